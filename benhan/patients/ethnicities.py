"""The 54 ethnic groups of Viet Nam, with the General Statistics Office codes
(Decision 121-TCTK/PPCĐ, 1979), plus 55 for foreigners, as used in health data."""

from __future__ import annotations

_NAMES = (
    "Kinh", "Tày", "Thái", "Hoa", "Khơ-me", "Mường", "Nùng", "HMông", "Dao", "Gia-rai",
    "Ngái", "Ê-đê", "Ba-na", "Xơ-đăng", "Sán Chay", "Cơ-ho", "Chăm", "Sán Dìu", "Hrê",
    "Mnông", "Ra-glai", "Xtiêng", "Bru-Vân Kiều", "Thổ", "Giáy", "Cơ-tu", "Gié-Triêng",
    "Mạ", "Khơ-mú", "Co", "Tà-ôi", "Chơ-ro", "Kháng", "Xinh-mun", "Hà Nhì", "Chu-ru",
    "Lào", "La Chí", "La Ha", "Phù Lá", "La Hủ", "Lự", "Lô Lô", "Chứt", "Mảng", "Pà Thẻn",
    "Cơ Lao", "Cống", "Bố Y", "Si La", "Pu Péo", "Brâu", "Ơ Đu", "Rơ-măm",
    "Người nước ngoài",
)  # fmt: skip

ETHNICITIES: list[tuple[str, str]] = [(f"{i:02d}", name) for i, name in enumerate(_NAMES, 1)]
ETHNICITY_NAMES = dict(ETHNICITIES)
