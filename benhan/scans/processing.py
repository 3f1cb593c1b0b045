"""Phone photos of paper pages → a compact A4 PDF; checks on uploaded outside PDFs.

A pure library: bytes in, bytes out, no database and no Django. The upload views call
`process()` for photographed pages and `check_pdf_upload()` for PDFs of outside documents.

Each photo is sniffed by its magic bytes (JPEG, PNG, WebP, HEIC/HEIF when pillow-heif is
installed), its pixel count is checked from the header before anything is decoded
(decompression bombs), then it is decoded (a truncated or corrupt file is refused, never
patched up), turned upright by its EXIF orientation, downscaled to fit A4 at the target
resolution (200 dpi: 1654 × 2339), optionally deskewed, and re-encoded as a progressive,
optimised JPEG without any EXIF, GPS or ICC data. Greyscale pages get their background
flattened (uneven lighting and paper grain become white; ink is stretched to black),
which is what makes a legible text page fit in ~100 KB. The JPEGs go into the PDF as they
are (img2pdf embeds them losslessly, one per A4 page).
"""

from __future__ import annotations

import io
import itertools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import img2pdf
from PIL import Image, ImageChops, ImageFilter, ImageOps, UnidentifiedImageError

try:  # iPhone photos; the wheel bundles libheif with its HEVC decoder.
    import pillow_heif
except ImportError:  # pragma: no cover - pillow-heif is a pinned dependency
    pillow_heif = None
    HEIF_SUPPORTED = False
else:
    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True

#: Refused before decoding: 40 MP is above every phone camera's default mode (12–24 MP;
#: 48–200 MP sensors save 12 MP binned pictures unless told otherwise). Decoded as RGB that
#: is 120 MB of memory, the most one upload may cost.
MAX_PIXELS = 40_000_000
#: Pillow's own guard (Image.MAX_IMAGE_PIXELS, ~89 MP: a warning, refused here; twice
#: that: an error at open time) stays on as well; it is process-wide, so not changed here.
#: Pages in one upload (a 10-page upload takes ~2 s on the 2-core server).
MAX_PAGES = 50

A4_MM = (210.0, 297.0)
#: Tuned default JPEG quality per mode (bench/scans.py; greyscale pages are flattened
#: first, so most of the page is pure white and costs nothing).
DEFAULT_QUALITY = {"L": 22, "RGB": 22}
PRODUCER = "Bệnh Án"

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}

_MESSAGES = {
    "empty": (
        "Chưa có trang nào, hoặc tệp rỗng.",
        "No pages, or an empty file.",
    ),
    "not_image": (
        "Tệp không phải là ảnh. Hãy chụp trang giấy hoặc chọn ảnh JPEG, PNG, WebP hay HEIC.",
        "Not an image. Photograph the page, or choose a JPEG, PNG, WebP or HEIC picture.",
    ),
    "too_many_pixels": (
        "Ảnh quá lớn (trên {limit} megapixel). Hãy chụp lại ở độ phân giải mặc định của máy.",
        "The picture is too large (over {limit} megapixels). Retake it at the camera's"
        " default resolution.",
    ),
    "corrupt": (
        "Ảnh bị hỏng hoặc tải lên chưa hết. Hãy tải lại hoặc chụp lại trang này.",
        "The picture is damaged or was not uploaded completely. Upload or photograph the"
        " page again.",
    ),
    "heic_unsupported": (
        "Máy chủ chưa đọc được ảnh HEIC của iPhone. Trên iPhone, chọn Cài đặt › Camera ›"
        " Định dạng › Tương thích nhất (JPEG), hoặc tải lên qua trang tải ảnh (ảnh sẽ được"
        " chuyển sang JPEG).",
        "This server cannot read iPhone HEIC photos. On the iPhone choose Settings › Camera"
        " › Formats › Most Compatible (JPEG), or upload through the photo picker (it sends"
        " JPEG).",
    ),
    "too_many_pages": (
        "Quá nhiều trang trong một lần tải lên (tối đa {limit}). Hãy chia thành nhiều lần.",
        "Too many pages in one upload (at most {limit}). Split it into several uploads.",
    ),
    "pdf_refused": (
        "Không nhận tệp PDF này: {reason_vi}.",
        "This PDF is refused: {reason_en}.",
    ),
}


class ScanError(Exception):
    """A page or a PDF the clinic should not store, with a message for the user.

    `code` is stable (the views map it to their own handling): empty, not_image,
    too_many_pixels, corrupt, heic_unsupported, too_many_pages, pdf_refused.
    `page` is the 1-based page of the upload that failed, if any. `message` is the
    Vietnamese message followed by the English one; both are also kept apart.
    """

    def __init__(self, code: str, *, page: int | None = None, **fmt: object) -> None:
        vi, en = _MESSAGES[code]
        fmt.setdefault("limit", {"too_many_pixels": MAX_PIXELS // 1_000_000}.get(code, MAX_PAGES))
        self.code = code
        self.page = page
        self.detail = fmt
        self.message_vi = vi.format(**fmt)
        self.message_en = en.format(**fmt)
        if page is not None:
            self.message_vi = f"Trang {page}: {self.message_vi}"
            self.message_en = f"Page {page}: {self.message_en}"
        self.message = f"{self.message_vi} ({self.message_en})"
        super().__init__(self.message)

    def on_page(self, page: int) -> ScanError:
        """The same error, naming the page of the upload it came from."""
        return ScanError(self.code, page=page, **self.detail)


@dataclass(frozen=True)
class ScanOptions:
    colour: bool = False  # greyscale by default
    dpi: int = 200  # target resolution on A4
    quality: int = 0  # 0 = our tuned default JPEG quality per mode
    deskew: bool = False  # projection-profile deskew, within ±5°

    def __post_init__(self) -> None:
        if not 72 <= self.dpi <= 600:
            raise ValueError("dpi must be between 72 and 600")
        if not 0 <= self.quality <= 95:
            raise ValueError("quality must be 0 (default) or 1–95")


def sniff(data: bytes) -> str | None:
    """The image format by magic bytes: JPEG, PNG, WEBP, HEIF, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        size = int.from_bytes(data[:4], "big")
        box = data[8 : min(max(size, 16), 64)]
        brands = {box[i : i + 4] for i in range(0, len(box) - 3, 4)} - {b"\0\0\0\0"}
        if brands & _HEIF_BRANDS:
            return "HEIF"
    return None


def a4_pixels(dpi: int) -> tuple[int, int]:
    """Portrait A4 at `dpi`: (1654, 2339) at 200 dpi."""
    return round(A4_MM[0] / 25.4 * dpi), round(A4_MM[1] / 25.4 * dpi)


def _open(data: bytes) -> Image.Image:
    if not data:
        raise ScanError("empty")
    kind = sniff(data)
    if kind is None:
        raise ScanError("not_image")
    if kind == "HEIF" and not HEIF_SUPPORTED:
        raise ScanError("heic_unsupported")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[kind])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ScanError("too_many_pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ScanError("corrupt") from None
    width, height = im.size
    if width < 1 or height < 1:
        raise ScanError("corrupt")
    if width * height > MAX_PIXELS:
        raise ScanError("too_many_pixels")
    return im


def _decode(im: Image.Image, colour: bool, box: tuple[int, int]) -> tuple[Image.Image, int]:
    """Load the pixels (JPEG: at the smallest DCT scale still ≥ the target) and turn
    them upright. Returns the image and the EXIF orientation that was applied."""
    orientation = 1
    try:
        orientation = int(im.getexif().get(0x0112, 1))
    except (ValueError, TypeError, SyntaxError, OSError):
        orientation = 1
    if im.format == "JPEG" and im.mode in ("L", "RGB", "YCbCr"):
        want = box if orientation < 5 else box[::-1]  # 5–8 store the page on its side
        fit = _fit(im.size, want)
        # libjpeg scales by 1/2, 1/4 or 1/8 while decoding and can decode to grey.
        im.draft("RGB" if colour else "L", fit)
    try:
        im.load()
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
        im = ImageOps.exif_transpose(im)
    except Image.DecompressionBombError:
        raise ScanError("too_many_pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError):
        raise ScanError("corrupt") from None
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(flat, rgba)
    if im.mode.startswith("I;16") or im.mode == "I":  # 16-bit PNG
        im = im.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    target = "RGB" if colour else "L"
    if im.mode != target:
        im = im.convert(target)
    return im, orientation


def _fit(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """`size` scaled down (never up) to fit in `box`, keeping the aspect ratio."""
    w, h = size
    scale = min(1.0, box[0] / w, box[1] / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _flatten_grey(im: Image.Image) -> Image.Image:
    """Background flattening for a greyscale document photo.

    The paper's brightness is estimated locally (max filter on a 1/16 copy, so text
    disappears, then blurred and scaled back); each pixel's darkness below its local
    paper is stretched so the darkest ink is black, and what is within the noise of
    the paper becomes white. Uneven lighting, shadows at the edges and paper grain go;
    light pencil or blue ink stays (it is darker than the noise).
    """
    small = im.reduce(16) if min(im.size) >= 160 else im.copy()
    bg = small.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.GaussianBlur(2))
    bg = bg.resize(im.size, Image.Resampling.BILINEAR)
    dark = ImageChops.subtract(bg, im)  # 0 on paper, larger for ink
    hist = dark.histogram()
    total = sum(hist)
    noise = _percentile(hist, total, 0.90) + 8
    ink = max(_percentile(hist, total, 0.997), noise + 40)
    noise = min(noise, 40)
    gain = 255 / max(1, ink - noise)
    lut = [255 - min(255, max(0, round((v - noise) * gain))) for v in range(256)]
    return dark.point(lut)


def _light_autocontrast(im: Image.Image) -> Image.Image:
    return ImageOps.autocontrast(im, cutoff=(0.5, 0.5), preserve_tone=True)


def _percentile(hist: list[int], total: int, q: float) -> int:
    seen = 0
    for value, count in enumerate(hist):
        seen += count
        if seen >= q * total:
            return value
    return 255


def _deskew_angle(im: Image.Image, limit: float = 5.0) -> float:
    """The rotation (degrees, counter-clockwise) that makes text lines horizontal.

    Projection profile on a ~500 px wide copy: ink inverted to white, rotated by each
    candidate angle, squeezed to one column (box filter = mean of each row); lines
    of text give the sharpest row profile when they are level. Coarse 0.5° steps over
    ±limit, then 0.1° around the best.
    """
    grey = im.convert("L")
    scale = 500 / grey.width
    small = grey.resize((500, max(1, round(grey.height * scale))), Image.Resampling.BOX)
    ink = ImageOps.invert(_light_autocontrast(small)).point(lambda v: 255 if v > 96 else 0)

    def score(angle: float) -> float:
        rotated = ink.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=0)
        rows = rotated.resize((1, rotated.height), Image.Resampling.BOX).get_flattened_data()
        return sum((a - b) ** 2 for a, b in itertools.pairwise(rows))

    steps = round(limit / 0.5)
    coarse = max((k * 0.5 for k in range(-steps, steps + 1)), key=score)
    fine = max((coarse + k * 0.1 for k in range(-4, 5)), key=score)
    return round(max(-limit, min(limit, fine)), 1)


def image_to_page(data: bytes, options: ScanOptions) -> tuple[bytes, dict]:
    """One photo → one JPEG page fitted to A4 at `options.dpi`, plus what was done.

    Raises ScanError (empty, not_image, too_many_pixels, corrupt, heic_unsupported).
    """
    im = _open(data)
    orig_format = im.format
    orig_width, orig_height = im.size
    portrait = a4_pixels(options.dpi)
    with im:
        # Which way up the page lies is known only after the EXIF transpose; the box is
        # chosen from the stored size and the orientation tag.
        try:
            tag = int(im.getexif().get(0x0112, 1))
        except (ValueError, TypeError, SyntaxError, OSError):
            tag = 1
        w, h = im.size if tag < 5 else im.size[::-1]
        box = portrait if h >= w else portrait[::-1]
        page, orientation = _decode(im, options.colour, box)
    box = portrait if page.height >= page.width else portrait[::-1]
    size = _fit(page.size, box)
    if size != page.size:
        page = page.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    angle = 0.0
    if options.deskew:
        angle = _deskew_angle(page)
        if abs(angle) >= 0.2:
            fill = 255 if page.mode == "L" else (255, 255, 255)
            page = page.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=fill)
    mode = page.mode
    page = _flatten_grey(page) if mode == "L" else _light_autocontrast(page)
    quality = options.quality or DEFAULT_QUALITY[mode]
    out = io.BytesIO()
    save = {"quality": quality, "optimize": True, "progressive": True}
    if mode == "RGB":
        save["subsampling"] = "4:2:0"
    page.save(out, format="JPEG", dpi=(options.dpi, options.dpi), **save)
    jpeg = out.getvalue()
    info = {
        "width": page.width,
        "height": page.height,
        "orig_width": orig_width,
        "orig_height": orig_height,
        "orig_format": orig_format,
        "rotated": orientation not in (0, 1),
        "exif_orientation": orientation,
        "deskew_angle": angle,
        "mode": mode,
        "quality": quality,
        "bytes": len(jpeg),
    }
    return jpeg, info


def build_pdf(
    pages: list[bytes], *, title: str, author: str, converted_by: str, converted_at: str
) -> bytes:
    """A4 PDF, one page per JPEG (embedded as is), with the conversion in its metadata.

    Portrait images go on portrait A4, landscape ones on landscape A4, centred and scaled
    to fit. `converted_at` is an ISO 8601 time (it also becomes the creation date).
    """
    if not pages:
        raise ScanError("empty")
    subject = (
        f"Chuyển từ bản giấy bởi {converted_by} lúc {converted_at}"
        f" / converted from paper by {converted_by} at {converted_at}"
    )
    try:
        when = datetime.fromisoformat(converted_at)
        if when.tzinfo is None:
            when = when.astimezone()
    except ValueError:
        when = None
    layout = img2pdf.get_layout_fun(
        (img2pdf.mm_to_pt(A4_MM[0]), img2pdf.mm_to_pt(A4_MM[1])),
        fit=img2pdf.FitMode.into,
        auto_orient=True,
    )
    doc = img2pdf.convert_to_docobject(
        list(pages),
        layout_fun=layout,
        title=title,
        author=author,
        creator=f"{PRODUCER} (img2pdf {img2pdf.__version__})",
        subject=subject,
        keywords=["converted from paper", "chuyển từ bản giấy", converted_by],
        creationdate=when,
        moddate=when,
    )
    # img2pdf can only write an ASCII producer (it also goes into its XMP template).
    doc.writer.docinfo["/Producer"] = PRODUCER
    return doc.tostring()


def process(
    uploads: list[bytes], options: ScanOptions, *, workers: int | None = None, **meta: str
) -> tuple[bytes, list[dict]]:
    """All photos of one upload → (PDF bytes, per-page info), in upload order.

    `meta` is passed to build_pdf (title, author, converted_by, converted_at). Raises
    ScanError naming the 1-based page that failed (the first one, in page order).
    Pages are converted on up to `workers` threads (default: 2, or 1 on one CPU);
    Pillow releases the GIL while decoding, resizing and encoding.
    """
    if not uploads:
        raise ScanError("empty")
    if len(uploads) > MAX_PAGES:
        raise ScanError("too_many_pages")
    # Headers first (cheap), so a page that is not an image fails before the others are
    # converted; pages before it are still converted, so the error named is the first.
    first_bad: ScanError | None = None
    for number, data in enumerate(uploads, 1):
        try:
            _open(data).close()
        except ScanError as exc:
            first_bad = exc.on_page(number)
            break
    if workers is None:
        workers = min(2, os.cpu_count() or 1)

    def one(number_data: tuple[int, bytes]) -> tuple[bytes, dict]:
        number, data = number_data
        try:
            jpeg, info = image_to_page(data, options)
        except ScanError as exc:
            raise exc.on_page(number) from None
        return jpeg, dict(info, page=number)

    numbered = list(enumerate(uploads, 1))
    if first_bad is not None:
        numbered = numbered[: first_bad.page - 1]
    if workers > 1 and len(numbered) > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan") as pool:
            results = list(pool.map(one, numbered))  # re-raises the lowest failing page
    else:
        results = [one(item) for item in numbered]
    if first_bad is not None:
        raise first_bad
    pdf = build_pdf([jpeg for jpeg, _ in results], **meta)
    return pdf, [info for _, info in results]


# --- Uploaded PDFs of outside documents -------------------------------------------------

#: Action types that run something, fetch something or open another file.
_BAD_ACTIONS = {
    "/JavaScript": ("chứa JavaScript", "it contains JavaScript"),
    "/Launch": ("chứa lệnh mở chương trình", "it contains a launch action"),
    "/GoToE": ("mở tệp đính kèm bên trong", "it opens an embedded document"),
    "/GoToR": ("mở một tệp khác", "it opens another file"),
    "/ImportData": ("nhập dữ liệu từ tệp khác", "it imports data from a file"),
    "/SubmitForm": ("gửi dữ liệu biểu mẫu đi", "it submits form data"),
    "/Rendition": ("phát nội dung đa phương tiện", "it plays multimedia"),
    "/RichMediaExecute": ("chạy nội dung đa phương tiện", "it runs rich media"),
    "/Movie": ("phát nội dung đa phương tiện", "it plays multimedia"),
    "/Sound": ("phát âm thanh", "it plays sound"),
}
_REFUSED = {
    "encrypted": ("tệp được mã hoá hoặc có mật khẩu", "it is encrypted or password-protected"),
    "attachment": ("tệp có tệp đính kèm", "it has embedded files or attachments"),
    "actions": (
        "tệp tự chạy hành động khi mở hoặc khi thao tác",
        "it runs actions when opened or used (OpenAction/AA)",
    ),
    "xfa": ("biểu mẫu XFA có thể chứa mã lệnh", "it has an XFA form, which can carry scripts"),
    "not_pdf": ("tệp không phải PDF", "it is not a PDF"),
    "unreadable": ("không đọc được tệp PDF", "the PDF cannot be read"),
}


def _refuse(reason: str) -> ScanError:
    """reason: a key of _REFUSED, or an action type (a key of _BAD_ACTIONS)."""
    vi, en = _BAD_ACTIONS[reason] if reason in _BAD_ACTIONS else _REFUSED[reason]
    return ScanError("pdf_refused", reason=reason, reason_vi=vi, reason_en=en)


def check_pdf_upload(data: bytes) -> bytes:
    """Return an uploaded PDF unchanged if it is inert; else raise ScanError(pdf_refused).

    Refused: encryption; JavaScript anywhere (/JS, JavaScript actions, the /JavaScript
    name tree); any additional-actions dictionary (/AA, on the document, a page, a field
    or an annotation); an /OpenAction that is an action other than GoTo (a destination
    is fine); launch, remote/embedded go-to, import, submit-form and multimedia actions;
    embedded files (the /EmbeddedFiles name tree, file specifications with /EF,
    /EmbeddedFile streams, file-attachment annotations); XFA forms. Every object
    reachable from the trailer is visited (object streams included). URI links are
    allowed. The file is not rewritten. The error's `detail["reason"]` says why: encrypted,
    attachment, actions, xfa, not_pdf, unreadable, or the action type ("/JavaScript",
    "/Launch", …).
    """
    from pyhanko.pdf_utils import generic, misc
    from pyhanko.pdf_utils.reader import PdfFileReader

    if not data:
        raise ScanError("empty")
    if b"%PDF-" not in data[:1024]:
        raise _refuse("not_pdf")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
    except Exception:  # any parse failure: we cannot vouch for it
        raise _refuse("unreadable") from None
    try:
        if reader.encrypted or "/Encrypt" in reader.trailer_view:
            raise _refuse("encrypted")
        root = reader.root
        open_action = root.get("/OpenAction")
        if isinstance(open_action, generic.DictionaryObject) and open_action.get("/S") != "/GoTo":
            raise _refuse("actions")
        _walk(reader.trailer_view, generic)
    except ScanError:
        raise
    except (misc.PdfError, ValueError, KeyError, TypeError, IndexError, RecursionError):
        raise _refuse("unreadable") from None
    return data


def _walk(trailer, generic) -> None:  # pyHanko types; pyHanko is imported lazily
    seen: set[tuple[int, int]] = set()
    stack = [trailer]
    while stack:
        obj = stack.pop()
        if isinstance(obj, generic.IndirectObject):
            key = (obj.idnum, obj.generation)
            if key in seen:
                continue
            seen.add(key)
            obj = obj.get_object()
        if isinstance(obj, generic.DictionaryObject):
            _check_dict(obj)
            stack.extend(obj.raw_get(k) for k in obj)
        elif isinstance(obj, generic.ArrayObject):
            stack.extend(obj.raw_get(i) for i in range(len(obj)))


def _check_dict(d) -> None:
    keys = set(d.keys())
    if "/JS" in keys or "/JavaScript" in keys:
        raise _refuse("/JavaScript")
    if "/AA" in keys:
        raise _refuse("actions")
    if "/EmbeddedFiles" in keys or "/EF" in keys or "/RichMediaContent" in keys:
        raise _refuse("attachment")
    if "/XFA" in keys:
        raise _refuse("xfa")
    kind = d.get("/Type") if "/Type" in keys else None
    if kind == "/EmbeddedFile":
        raise _refuse("attachment")
    if "/Subtype" in keys and d.get("/Subtype") in ("/FileAttachment", "/RichMedia"):
        raise _refuse("attachment")
    if "/S" in keys:
        action = d.get("/S")
        if action in _BAD_ACTIONS:
            raise _refuse(action)
