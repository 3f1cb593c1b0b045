"""Photographs of paper pages, generated for the scan tests and bench/scans.py.

`page_photo()` draws what a phone camera sees when a form is photographed on a desk: a
slightly grey, unevenly lit sheet with lines of Vietnamese text (DejaVu Sans when it is
installed), a blue handwritten-looking signature and a red stamp, sensor noise, saved as a
JPEG the way a phone saves it (quality ~92, several MB at 12 MP). With `orientation=6` the
pixels are stored lying on their side and the EXIF Orientation tag says so, as a phone
held upright does.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

LINES = [
    "SỞ Y TẾ TỈNH ĐỒNG THÁP — TRUNG TÂM Y TẾ HUYỆN",
    "GIẤY CAM KẾT CHẤP THUẬN PHẪU THUẬT, THỦ THUẬT",
    "Họ và tên người bệnh: Nguyễn Thị Hồng Nhung   Năm sinh: 1987",
    "Địa chỉ: ấp Tân Hòa, xã Tân Thuận Đông, TP. Cao Lãnh",
    "Số vào viện: 24-001873   Khoa: Ngoại tổng hợp   Giường: 12",
    "Chẩn đoán: Viêm ruột thừa cấp (K35.8)",
    "Phương pháp phẫu thuật: Cắt ruột thừa nội soi",
    "Tôi đã được bác sĩ giải thích rõ về tình trạng bệnh, phương pháp",
    "phẫu thuật, các nguy cơ, tai biến có thể xảy ra trong và sau mổ,",
    "và đồng ý để bệnh viện thực hiện phẫu thuật cho tôi.",
    "Tôi cam kết chấp hành nội quy khoa phòng và hướng dẫn của",
    "nhân viên y tế trong suốt thời gian điều trị.",
    "Người làm chứng: Trần Văn Bình, điều dưỡng trưởng khoa.",
    "Ngày 14 tháng 3 năm 2026",
]


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = FONT_DIR / "DejaVuSans.ttf"
    if path.exists():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def page_photo(
    width: int = 3000,
    height: int = 4000,
    *,
    orientation: int = 1,
    fmt: str = "JPEG",
    quality: int = 92,
    noise: float = 7.0,
    seed: int = 1,
    lines: int = 42,
    exif_extra: bool = True,
) -> bytes:
    """An upright photo of a text page, width × height, encoded as `fmt`.

    The text block starts in the top third of the sheet and the left quarter is margin;
    tests use that to check which way up the output is.
    """
    rnd = random.Random(seed)
    # Desk around the sheet, lit from the top left: a brightness gradient.
    light = Image.linear_gradient("L").resize((width, height)).point(lambda v: 205 - v // 6)
    photo = Image.merge("RGB", (light, light.point(lambda v: v - 3), light.point(lambda v: v - 9)))
    draw = ImageDraw.Draw(photo)
    mx, my = width // 16, height // 20
    paper = (mx, my, width - mx, height - my)
    # The sheet: lighter than the desk, with the same gradient on it.
    sheet = light.point(lambda v: min(255, v + 30)).crop(paper)
    photo.paste(Image.merge("RGB", (sheet, sheet, sheet.point(lambda v: v - 4))), paper[:2])
    fsize = max(10, height // 80)
    body, head = font(fsize), font(int(fsize * 1.15))
    x0, y = paper[0] + width // 12, paper[1] + height // 14
    step = int(fsize * 1.55)
    for i in range(lines):
        text = LINES[i % len(LINES)]
        draw.text((x0, y), text, fill=(28, 28, 32), font=head if i < 2 else body)
        y += step
        if y > paper[3] - 9 * step:
            break
    # A signature in blue ink and a red round stamp near the bottom right.
    sx, sy = width * 6 // 10, y + 3 * step
    points = [(sx + k * fsize // 2, sy + rnd.randint(-fsize, fsize)) for k in range(14)]
    draw.line(points, fill=(20, 40, 150), width=max(2, fsize // 10), joint="curve")
    r = fsize * 2
    cx, cy = width * 3 // 10, sy
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(190, 30, 40), width=max(2, fsize // 8))
    draw.text((cx - r // 2, cy - fsize // 2), "TTYT", fill=(190, 30, 40), font=body)
    # Lens softness and sensor noise.
    photo = photo.filter(ImageFilter.GaussianBlur(0.8))
    grain = Image.effect_noise((width, height), noise)
    photo = Image.merge("RGB", [ImageChops.add(b, grain, 1.0, -128) for b in photo.split()])
    return _encode(photo, orientation=orientation, fmt=fmt, quality=quality, exif_extra=exif_extra)


def _encode(
    photo: Image.Image, *, orientation: int, fmt: str, quality: int, exif_extra: bool
) -> bytes:
    # Store the pixels the way the camera sensor saw them, and tag how to turn them.
    inverse = {
        1: None,
        3: Image.Transpose.ROTATE_180,
        6: Image.Transpose.ROTATE_90,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    if inverse is not None:
        photo = photo.transpose(inverse)
    exif = Image.Exif()
    exif[0x0112] = orientation
    if exif_extra:
        exif[0x010F] = "Samsung"  # Make
        exif[0x0110] = "Galaxy A15"  # Model
        gps = {1: "N", 2: (10.0, 27.0, 36.5), 3: "E", 4: (105.0, 38.0, 12.25)}
        exif[0x8825] = gps  # GPSInfo: where the photo was taken
    out = io.BytesIO()
    kwargs = {"exif": exif.tobytes()}
    if fmt in ("JPEG", "WEBP", "HEIF"):
        kwargs["quality"] = quality
    photo.save(out, format=fmt, **kwargs)
    return out.getvalue()
