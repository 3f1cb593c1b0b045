"""The demo clinic's medical records, made through the real record actions and signatures.

`seed_records()` runs inside `benhan.core.demo.seed()`, after the encounters. It gives
every doctor and nurse a signing certificate under one demo PIN, then opens records for
a spread of the seeded encounters and takes each through the same actions the pages
use — create, fill in, complete (rendered with Typst), sign with the PIN (PAdES,
timestamped), seal as the records officer, close — stopping at a planned state, so the
clinic has records in every state: draft, completed (awaiting signatures), partially
signed, signed (awaiting the seal), sealed, and closed ("stored"). Two documents are
amended (version 2 with a reason) and signed again.

Older encounters are mostly done with; recent ones are still on their way, as in a real
records office. Costs about 0.1–0.4 s per document (the PIN key derivation is slow on
purpose), so the number of records is kept modest.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from benhan.accounts.models import Facility, Role, User
from benhan.audit.chain import Actor
from benhan.encounters.models import Encounter, EncounterKind, EncounterStatus
from benhan.records import actions, formtypes
from benhan.records.models import Document, Record

Progress = Callable[[str, int, int], None]

# One signing PIN for every demo doctor and nurse. A demo, not a secret: it is printed
# with the logins and in the README.
SIGNING_PIN = "246810"
DEFAULT_RECORDS = 60

DRAFT, COMPLETED, PARTIAL, SIGNED, SEALED, STORED = (
    "draft", "completed", "partially signed", "signed", "sealed", "stored"
)  # fmt: skip
# Most advanced first.
STATES = (STORED, SEALED, SIGNED, PARTIAL, COMPLETED, DRAFT)
# Share of the finished encounters' records in each state but "stored" (which takes the
# rest); drafts of open encounters come on top.
_SHARES = {SEALED: 0.10, SIGNED: 0.08, PARTIAL: 0.08, COMPLETED: 0.10, DRAFT: 0.10}
_OPEN_SHARE = 0.07

DISCHARGE, OUTPATIENT, CONSENT = "discharge_paper", "outpatient_record", "surgical_consent"

_AMENDMENTS = (
    (
        "Bổ sung chẩn đoán bệnh kèm theo và lời dặn sau khi có kết quả xét nghiệm.",
        "notes",
        " Kiểm tra lại công thức máu, sinh hóa máu sau 2 tuần.",
    ),
    (
        "Sửa lại hướng dẫn dùng thuốc ghi chưa đầy đủ trong phần điều trị.",
        "treatment",
        " Uống thuốc sau ăn, không tự ý ngừng thuốc.",
    ),
)


# --- Clinical text ---------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """What a doctor writes for one kind of case (keyed by ICD-10 code prefix)."""

    history: str
    exam: str
    treatment: str  # outpatient visit or emergency care
    inpatient: str = ""  # the course of an admission, for the discharge paper
    follow_up: str = ""
    procedure: str = ""  # surgery or procedure that needs the consent form
    risks: str = ""
    emergency: str = ""  # care in the emergency department, when it differs from `treatment`


_RISKS_SURGERY = (
    "Đã giải thích cho người bệnh và gia đình về tình trạng bệnh, sự cần thiết của phẫu "
    "thuật, phương pháp vô cảm; các nguy cơ có thể xảy ra: chảy máu, nhiễm trùng vết mổ, "
    "tai biến do gây mê hồi sức, phải chuyển mổ mở hoặc mổ lại; người bệnh và gia đình "
    "đã hiểu và đồng ý."
)
_RISKS_PROCEDURE = (
    "Đã giải thích về thủ thuật, gây tê tại chỗ; nguy cơ đau, chảy máu, nhiễm trùng, "
    "phải làm lại thủ thuật; người bệnh và gia đình đã hiểu và đồng ý."
)

TEXTS: dict[str, Text] = {
    "J0": Text(
        "Bệnh {days} ngày nay, sốt nhẹ, ho khan, đau rát họng, sổ mũi. Đã tự dùng "
        "paracetamol, đỡ sốt.",
        "Họng đỏ, amidan không to, không có giả mạc. Phổi thông khí rõ, không rale.",
        "Paracetamol 500 mg × 3 viên/ngày khi sốt trên 38,5 °C; alpha chymotrypsin 4,2 mg "
        "× 4 viên/ngày × 5 ngày; súc họng nước muối sinh lý, uống đủ nước.",
        follow_up="Tái khám sau 5 ngày hoặc khi sốt cao, khó thở.",
    ),
    "J20": Text(
        "Ho có đờm trắng {days} ngày, sốt nhẹ về chiều, không khó thở.",
        "Phổi rale ngáy rải rác hai bên, không rale ẩm. SpO2 97% khí trời.",
        "Amoxicillin 500 mg × 3 viên/ngày × 7 ngày; acetylcystein 200 mg × 3 gói/ngày; "
        "paracetamol khi sốt.",
        follow_up="Tái khám sau 7 ngày.",
    ),
    "A0": Text(
        "Đi ngoài phân lỏng 5–6 lần/ngày từ {days} ngày nay, không nhầy máu, nôn 2 lần, "
        "đau bụng quanh rốn.",
        "Môi hơi khô, không có dấu hiệu mất nước nặng. Bụng mềm, ấn đau nhẹ quanh rốn, "
        "không có phản ứng thành bụng.",
        "Oresol pha đúng hướng dẫn, uống theo nhu cầu; kẽm gluconat 10 mg × 2 gói/ngày × "
        "10 ngày; men vi sinh Bacillus clausii × 2 ống/ngày. Ăn lỏng, dễ tiêu.",
        "Bù dịch Ringer lactat theo phác đồ, oresol, kẽm, men vi sinh; theo dõi dấu hiệu "
        "mất nước, điện giải đồ. Hết nôn, phân thành khuôn từ ngày thứ 3.",
        "Tái khám khi đi ngoài nhiều lần, nôn nhiều, sốt cao.",
    ),
    "A97": Text(
        "Sốt cao liên tục {days} ngày, đau đầu, đau mỏi cơ, không ho, không chảy máu.",
        "Không xuất huyết dưới da, gan không to. Nghiệm pháp dây thắt âm tính. Tiểu cầu "
        "145 G/L, NS1 dương tính.",
        "Paracetamol 500 mg khi sốt trên 38,5 °C, cách nhau 4–6 giờ; uống nhiều nước, "
        "oresol. Không dùng aspirin, ibuprofen.",
        "Truyền dịch Ringer lactat theo hematocrit; theo dõi tiểu cầu hằng ngày (thấp nhất "
        "42 G/L ngày thứ 5); hạ sốt bằng paracetamol. Hết sốt 48 giờ, tiểu cầu 110 G/L.",
        "Tái khám hằng ngày; đến ngay khi đau bụng, nôn nhiều, chảy máu cam, chân răng.",
    ),
    "R50": Text(
        "Sốt {days} ngày, quấy khóc, ăn kém, không ho, không tiêu chảy.",
        "Họng đỏ nhẹ, không ban, không dấu hiệu màng não. Phổi không rale.",
        "Hạ sốt paracetamol 15 mg/kg/lần khi sốt trên 38,5 °C, chườm ấm; uống nhiều nước. "
        "Hướng dẫn gia đình theo dõi dấu hiệu nặng.",
        follow_up="Tái khám sau 2 ngày hoặc ngay khi co giật, li bì, nôn nhiều.",
    ),
    "B34": Text(
        "Sốt {days} ngày, đau mỏi người, đau đầu, sổ mũi.",
        "Không ban, không xuất huyết. Họng đỏ, phổi không rale.",
        "Paracetamol 500 mg khi sốt; nghỉ ngơi, uống nhiều nước, ăn lỏng.",
        follow_up="Tái khám khi sốt quá 5 ngày.",
    ),
    "B0": Text(
        "Sốt {days} ngày, loét miệng, nổi bọng nước lòng bàn tay, bàn chân; ăn kém.",
        "Loét niêm mạc miệng; bọng nước lòng bàn tay, bàn chân, mông. Không giật mình, "
        "không run chi, không loạng choạng.",
        "Hạ sốt paracetamol 15 mg/kg/lần; vệ sinh răng miệng; ăn lỏng, mát; cách ly tại "
        "nhà. Hướng dẫn gia đình theo dõi dấu hiệu giật mình, nôn, sốt cao không hạ.",
        "Theo dõi sát dấu hiệu thần kinh, hạ sốt, bù dịch; phenobarbital khi giật mình. "
        "Hết sốt, không còn giật mình, tổn thương da đang lành.",
        "Nghỉ học 10 ngày; tái khám ngay khi giật mình, sốt cao.",
    ),
    "H66": Text(
        "Đau tai phải, sốt {days} ngày, quấy khóc về đêm.",
        "Màng nhĩ phải đỏ, phồng, mất nón sáng. Họng đỏ.",
        "Amoxicillin 80 mg/kg/ngày chia 2 lần × 7 ngày; paracetamol khi sốt; giữ khô tai.",
        follow_up="Tái khám sau 7 ngày.",
    ),
    "J21": Text(
        "Ho, khò khè {days} ngày, thở nhanh, bú kém.",
        "Thở 52 lần/phút, co kéo nhẹ liên sườn, rale rít, rale ẩm nhỏ hạt hai phổi. SpO2 95%.",
        "Khí dung nước muối 3%, hút mũi; bú, ăn chia nhỏ; hướng dẫn đếm nhịp thở tại nhà.",
        "Thở oxy gọng mũi 1 lít/phút 2 ngày đầu, khí dung nước muối ưu trương 3%, hút "
        "đờm, bú chia nhỏ. Hết khò khè, SpO2 98% khí trời.",
        "Tái khám sau 3 ngày; đến ngay khi thở nhanh, bỏ bú, tím tái.",
    ),
    "J4": Text(
        "Khó thở, khò khè về đêm, ho khạc đờm; đã dùng thuốc xịt không đều.",
        "Lồng ngực cân đối, rì rào phế nang giảm, rale rít rải rác hai phổi. SpO2 94%.",
        "Salbutamol xịt 100 mcg × 2 nhát khi khó thở; budesonide/formoterol 160/4,5 mcg × "
        "2 nhát/ngày; hướng dẫn kỹ thuật xịt, tránh khói bụi, thuốc lá, thuốc lào.",
        "Thở oxy 2 lít/phút, khí dung salbutamol + ipratropium, methylprednisolon 40 mg/ngày "
        "× 5 ngày, kháng sinh amoxicillin–clavulanat. SpO2 95% khí trời khi ra viện.",
        "Dùng thuốc dự phòng hằng ngày; tái khám sau 1 tháng.",
    ),
    "I10": Text(
        "Tăng huyết áp phát hiện 5 năm, điều trị amlodipin 5 mg đều. Không đau ngực, không "
        "khó thở, thỉnh thoảng đau đầu.",
        "Tim đều, không tiếng thổi; phổi không rale; không phù.",
        "Amlodipin 5 mg × 1 viên sáng; losartan 50 mg × 1 viên sáng × 30 ngày. Ăn nhạt "
        "dưới 5 g muối/ngày, đi bộ 30 phút mỗi ngày.",
        "Kiểm soát huyết áp bằng amlodipin 10 mg, losartan 50 mg, thêm hydroclorothiazid "
        "12,5 mg; điện tim, siêu âm tim, chức năng thận. Huyết áp 130/80 mmHg khi ra viện.",
        "Tái khám sau 30 ngày, mang sổ theo dõi huyết áp.",
        emergency="Captopril 25 mg ngậm dưới lưỡi, theo dõi huyết áp mỗi 30 phút; sau 2 giờ "
        "HA 150/90 mmHg, hết đau đầu. Tiếp tục amlodipin 5 mg mỗi sáng.",
    ),
    "I11": Text(
        "Tăng huyết áp 10 năm, điều trị không đều; mệt, khó thở khi gắng sức.",
        "Mỏm tim lệch trái, tim đều; phổi không rale; không phù.",
        "Amlodipin 10 mg, perindopril 5 mg mỗi sáng × 30 ngày.",
        "Perindopril 5 mg, amlodipin 10 mg; siêu âm tim: dày thất trái, EF 58%. Huyết áp "
        "ổn định 130/80 mmHg.",
        "Tái khám sau 30 ngày.",
    ),
    "E11": Text(
        "Đái tháo đường týp 2 phát hiện 4 năm, điều trị metformin; khát, tiểu nhiều hơn "
        "trong tháng qua.",
        "Glucose máu mao mạch lúc đói 8,6 mmol/L; HbA1c 7,4%. Cảm giác bàn chân bình thường.",
        "Metformin 850 mg × 2 viên/ngày sau ăn sáng, tối; gliclazid MR 30 mg × 1 viên sáng "
        "× 30 ngày. Ăn giảm tinh bột, đường; vận động đều.",
        "Insulin nhanh theo glucose mao mạch 4 lần/ngày, sau chuyển insulin hỗn hợp 30/70; "
        "bù dịch, kali; hướng dẫn tự tiêm insulin. Glucose lúc đói 7,2 mmol/L khi ra viện.",
        "Tái khám sau 30 ngày; xét nghiệm HbA1c sau 3 tháng.",
    ),
    "R51": Text(
        "Đau đầu vùng chẩm {days} ngày, không sốt, không nôn.",
        "Không dấu hiệu thần kinh khu trú, không cứng gáy.",
        "Paracetamol 500 mg × 3 viên/ngày khi đau × 5 ngày; nghỉ ngơi, ngủ đủ giấc.",
        follow_up="Tái khám khi đau đầu tăng, nôn, yếu tay chân.",
    ),
    "R42": Text(
        "Chóng mặt khi thay đổi tư thế {days} ngày, buồn nôn, không ù tai.",
        "Không dấu hiệu thần kinh khu trú. Nghiệm pháp Dix–Hallpike dương tính bên phải.",
        "Betahistin 16 mg × 3 viên/ngày × 10 ngày; tập phục hồi tiền đình; tránh thay đổi "
        "tư thế đột ngột.",
        follow_up="Tái khám sau 10 ngày.",
    ),
    "H81": Text(
        "Chóng mặt quay cuồng khi nằm xuống, trở mình, kéo dài dưới 1 phút.",
        "Nghiệm pháp Dix–Hallpike dương tính bên phải; không dấu thần kinh khu trú.",
        "Làm nghiệm pháp Epley tại phòng khám; betahistin 16 mg × 3 viên/ngày × 7 ngày.",
        follow_up="Tái khám sau 1 tuần.",
    ),
    "G43": Text(
        "Đau nửa đầu trái từng cơn, kèm buồn nôn, sợ ánh sáng.",
        "Khám thần kinh không phát hiện bất thường.",
        "Paracetamol 1 g khi lên cơn; flunarizin 5 mg × 1 viên tối × 30 ngày; ngủ đủ giấc, "
        "tránh thức khuya.",
        follow_up="Tái khám sau 1 tháng.",
    ),
    "K2": Text(
        "Đau âm ỉ thượng vị 2 tuần, tăng khi đói, ợ chua, ợ hơi.",
        "Bụng mềm, ấn đau nhẹ thượng vị, gan lách không sờ thấy.",
        "Esomeprazol 40 mg × 1 viên trước ăn sáng × 28 ngày; gel nhôm phosphat khi đau; "
        "tránh rượu bia, đồ chua cay.",
        "Nhịn ăn 24 giờ, esomeprazol 40 mg tĩnh mạch × 2 lần/ngày, bù dịch, chống nôn; "
        "nội soi dạ dày: viêm loét hang vị, test HP dương tính; điều trị tiệt trừ HP 14 ngày.",
        "Tái khám sau 4 tuần.",
    ),
    "K30": Text(
        "Đầy bụng, khó tiêu sau ăn 1 tháng.",
        "Bụng mềm, không điểm đau khu trú.",
        "Domperidon 10 mg × 3 viên/ngày trước ăn × 10 ngày; ăn chậm, chia nhỏ bữa.",
        follow_up="Tái khám sau 2 tuần.",
    ),
    "K80": Text(
        "Đau hạ sườn phải từng cơn sau ăn nhiều mỡ, không sốt, không vàng da.",
        "Murphy (±). Siêu âm: túi mật có sỏi 12 mm, thành không dày.",
        "Drotaverin 40 mg × 2 viên/ngày khi đau; ăn giảm mỡ; hẹn tư vấn phẫu thuật nội soi "
        "cắt túi mật.",
        "Phẫu thuật nội soi cắt túi mật; kháng sinh ceftriaxon 2 g/ngày × 5 ngày, giảm "
        "đau. Vết mổ khô, liền tốt.",
        "Cắt chỉ sau 7 ngày; tái khám sau 1 tháng.",
        "Phẫu thuật nội soi cắt túi mật",
        _RISKS_SURGERY,
    ),
    "K81": Text(
        "Đau hạ sườn phải, sốt 38,5 °C {days} ngày.",
        "Murphy (+). Siêu âm: túi mật căng, thành dày 5 mm, có sỏi.",
        "Chuyển điều trị nội trú.",
        "Kháng sinh ceftriaxon + metronidazol; phẫu thuật nội soi cắt túi mật ngày thứ 3. "
        "Hết sốt, vết mổ khô.",
        "Cắt chỉ sau 7 ngày; tái khám sau 1 tháng.",
        "Phẫu thuật nội soi cắt túi mật",
        _RISKS_SURGERY,
    ),
    "M5": Text(
        "Đau thắt lưng 3 tuần, tăng khi cúi, lan xuống mông phải.",
        "Co cứng cơ cạnh sống thắt lưng, Lasègue phải 60°, không rối loạn cơ tròn.",
        "Meloxicam 7,5 mg × 1 viên sau ăn × 10 ngày; eperison 50 mg × 3 viên/ngày; chườm "
        "ấm, tập vận động lưng.",
        follow_up="Tái khám sau 2 tuần.",
    ),
    "M1": Text(
        "Đau khớp gối hai bên nhiều năm, tăng khi đi lại, lên xuống cầu thang.",
        "Khớp gối hai bên lạo xạo khi vận động, không sưng nóng đỏ.",
        "Paracetamol 500 mg × 3 viên/ngày khi đau; glucosamin 1500 mg/ngày; giảm cân, tập "
        "đạp xe nhẹ.",
        follow_up="Tái khám sau 1 tháng.",
    ),
    "N39": Text(
        "Tiểu buốt, tiểu rắt {days} ngày, không sốt.",
        "Ấn đau nhẹ hạ vị, chạm thận âm tính. Nước tiểu: bạch cầu (++), nitrit dương tính.",
        "Ciprofloxacin 500 mg × 2 viên/ngày × 5 ngày; uống nhiều nước.",
        "Ceftriaxon 2 g tĩnh mạch/ngày × 7 ngày, hạ sốt, bù dịch. Hết sốt sau 3 ngày.",
        "Tái khám sau 1 tuần, xét nghiệm lại nước tiểu.",
    ),
    "N10": Text(
        "Sốt cao, rét run, tiểu buốt, đau thắt lưng phải {days} ngày.",
        "Chạm thận phải dương tính. Bạch cầu 16 G/L, nước tiểu: bạch cầu (+++).",
        "Chuyển điều trị nội trú.",
        "Ceftriaxon 2 g tĩnh mạch/ngày × 7 ngày; cấy nước tiểu: E. coli nhạy ceftriaxon; "
        "hạ sốt, bù dịch. Hết sốt sau 3 ngày.",
        "Tái khám sau 1 tuần, xét nghiệm lại nước tiểu.",
    ),
    "L": Text(
        "Ngứa, nổi mẩn đỏ {days} ngày, không rõ tiếp xúc chất lạ.",
        "Ban đỏ dạng sẩn, ngứa, rải rác hai tay và thân mình; không phù môi, không khó thở.",
        "Loratadin 10 mg × 1 viên tối × 7 ngày; kem hydrocortison 1% bôi ngày 2 lần; tránh "
        "tiếp xúc chất nghi dị ứng.",
        follow_up="Tái khám sau 1 tuần.",
    ),
    "L02": Text(
        "Sưng nóng đỏ đau cẳng chân {days} ngày, sốt.",
        "Ổ sưng 4 × 5 cm mặt trước cẳng chân, nóng đỏ, lùng nhùng.",
        "Chuyển điều trị nội trú.",
        "Chích rạch tháo mủ ổ áp xe, thay băng hằng ngày; oxacillin 2 g × 3 lần/ngày × "
        "7 ngày; kiểm soát đường huyết. Vết chích khô, hết sốt.",
        "Thay băng tại trạm y tế xã; tái khám sau 1 tuần.",
        "Chích rạch tháo mủ ổ áp xe cẳng chân",
        _RISKS_PROCEDURE,
    ),
    "L50.0": Text(
        "Nổi mẩn ngứa toàn thân, sưng môi 1 giờ sau ăn hải sản.",
        "Ban mày đay toàn thân, phù môi; không khó thở, HA ổn định.",
        "Methylprednisolon 40 mg tiêm tĩnh mạch, diphenhydramin 10 mg tiêm bắp; theo dõi "
        "6 giờ tại khoa, hết ban, không khó thở. Loratadin 10 mg × 5 ngày. Tránh hải sản.",
        follow_up="Đến ngay khi khó thở, phù mặt.",
    ),
    "T78": Text(
        "Nổi mẩn ngứa toàn thân, sưng môi sau ăn hải sản.",
        "Ban mày đay, phù môi; phổi không rale rít; HA 120/70 mmHg.",
        "Methylprednisolon 40 mg tiêm tĩnh mạch, diphenhydramin 10 mg tiêm bắp; theo dõi "
        "6 giờ, hết ban, không khó thở. Tránh hải sản.",
        follow_up="Đến ngay khi khó thở, phù mặt.",
    ),
    "H10": Text(
        "Đỏ mắt, chảy nước mắt, cộm như có cát {days} ngày.",
        "Kết mạc hai mắt cương tụ, tiết tố nhầy; giác mạc trong.",
        "Nhỏ mắt tobramycin 0,3% × 4 lần/ngày × 7 ngày; rửa mắt nước muối sinh lý; không "
        "dụi mắt, dùng khăn riêng.",
        follow_up="Tái khám sau 1 tuần.",
    ),
    "D50": Text(
        "Mệt mỏi, hoa mắt, chóng mặt khi đứng dậy 2 tháng; kinh nguyệt nhiều.",
        "Da xanh, niêm mạc nhợt. Hb 98 g/L, MCV 72 fL.",
        "Sắt fumarat + acid folic × 1 viên/ngày × 3 tháng; ăn thịt, rau xanh.",
        follow_up="Xét nghiệm lại công thức máu sau 1 tháng.",
    ),
    "Z34": Text(
        "Thai 24 tuần, thai máy đều, không đau bụng, không ra máu.",
        "Bề cao tử cung 22 cm, tim thai 145 lần/phút; không phù.",
        "Viên sắt + acid folic 1 viên/ngày, canxi 500 mg/ngày; tiêm phòng uốn ván mũi 2.",
        follow_up="Khám thai lại sau 4 tuần.",
    ),
    "J01": Text(
        "Ngạt mũi, chảy mũi đặc, đau nhức vùng má {days} ngày.",
        "Niêm mạc mũi phù nề, dịch mủ khe giữa; ấn điểm xoang hàm đau.",
        "Amoxicillin–clavulanat 625 mg × 2 viên/ngày × 7 ngày; rửa mũi nước muối; xịt mũi "
        "fluticason.",
        follow_up="Tái khám sau 1 tuần.",
    ),
    "J3": Text(
        "Ngạt mũi, chảy mũi trong kéo dài, hắt hơi buổi sáng.",
        "Niêm mạc mũi nhợt, phù nề, cuốn dưới quá phát.",
        "Xịt mũi fluticason × 2 nhát/ngày × 1 tháng; loratadin 10 mg × 1 viên/ngày; rửa "
        "mũi nước muối.",
        follow_up="Tái khám sau 1 tháng.",
    ),
    "Z00": Text(
        "Khám sức khỏe định kỳ, không có triệu chứng.",
        "Các cơ quan chưa phát hiện bất thường; BMI 22,4. Xét nghiệm máu, nước tiểu trong "
        "giới hạn bình thường.",
        "Không dùng thuốc. Tư vấn dinh dưỡng, vận động.",
        follow_up="Khám sức khỏe lại sau 12 tháng.",
    ),
    "F": Text(
        "Khó ngủ, ngủ không sâu giấc, lo lắng nhiều 3 tháng nay.",
        "Tỉnh, lo âu; khám thần kinh không phát hiện bất thường.",
        "Tư vấn vệ sinh giấc ngủ; sulpirid 50 mg × 2 viên/ngày × 14 ngày.",
        follow_up="Tái khám sau 2 tuần; khám chuyên khoa tâm thần nếu không cải thiện.",
    ),
    "S81": Text(
        "Vết thương cẳng chân {hours} giờ trước khi đến viện.",
        "Vết thương cẳng chân dài 3 cm, bờ nham nhở, không lộ gân xương; vận động, cảm "
        "giác bàn chân bình thường.",
        "Rửa vết thương bằng nước muối sinh lý và povidon iod, khâu 4 mũi chỉ nylon 3.0; "
        "tiêm SAT 1500 đơn vị; cephalexin 500 mg × 4 viên/ngày × 5 ngày.",
        follow_up="Thay băng hằng ngày, cắt chỉ sau 7 ngày.",
    ),
    "S6": Text(
        "Dao cắt vào bàn tay {hours} giờ trước khi đến viện.",
        "Vết thương gan bàn tay dài 2,5 cm, không tổn thương gân; ngón tay vận động tốt.",
        "Sát khuẩn, khâu 3 mũi chỉ nylon 4.0; tiêm SAT 1500 đơn vị; cephalexin 500 mg × "
        "4 viên/ngày × 5 ngày.",
        follow_up="Cắt chỉ sau 7 ngày.",
    ),
    "S01": Text(
        "Ngã cầu thang đập đầu {hours} giờ trước, không mất ý thức, không nôn.",
        "Glasgow 15 điểm; vết rách da đầu vùng đỉnh dài 4 cm; không dấu thần kinh khu trú.",
        "Cạo tóc, sát khuẩn, khâu 5 mũi; tiêm SAT; theo dõi tri giác 6 giờ tại khoa.",
        follow_up="Cắt chỉ sau 7 ngày; đến ngay khi đau đầu tăng, nôn, lơ mơ.",
    ),
    "T14": Text(
        "Ngã xe máy {hours} giờ trước, xây xát tay chân.",
        "Nhiều vết xây xát da khuỷu tay, gối; không biến dạng chi; X-quang không gãy xương.",
        "Rửa sạch, sát khuẩn, băng vô khuẩn; tiêm SAT 1500 đơn vị; paracetamol khi đau.",
        follow_up="Thay băng hằng ngày tại trạm y tế xã.",
    ),
    "N20": Text(
        "Đau quặn thắt lưng phải lan xuống bẹn từ {hours} giờ trước, buồn nôn.",
        "Chạm thận phải (±). Siêu âm: sỏi niệu quản phải 5 mm, thận phải ứ nước độ I.",
        "Drotaverin 40 mg tiêm tĩnh mạch, ketorolac 30 mg tiêm bắp; hết đau sau 2 giờ. "
        "Tamsulosin 0,4 mg × 1 viên/ngày × 14 ngày; uống 2–3 lít nước/ngày.",
        follow_up="Siêu âm lại sau 2 tuần.",
    ),
    "R55": Text(
        "Ngất tại nhà khi đang đứng, tỉnh lại sau 1 phút, không co giật.",
        "Tỉnh, không dấu thần kinh khu trú. Điện tim: nhịp xoang 72 lần/phút. Glucose máu "
        "5,6 mmol/L.",
        "Theo dõi tại khoa 6 giờ, không tái phát; uống đủ nước, đứng dậy từ từ.",
        follow_up="Khám lại chuyên khoa tim mạch nếu ngất lại.",
    ),
    "S93": Text(
        "Trẹo chân khi chơi bóng {hours} giờ trước, sưng đau cổ chân phải.",
        "Sưng nề mắt cá ngoài, ấn đau; X-quang cổ chân không thấy gãy xương.",
        "Băng thun cố định, chườm lạnh, kê cao chân; paracetamol 500 mg khi đau.",
        follow_up="Tái khám sau 1 tuần.",
    ),
    "I21": Text(
        "Đau ngực trái dữ dội, vã mồ hôi từ {hours} giờ trước.",
        "Điện tim: ST chênh lên DII, DIII, aVF. Troponin T tăng.",
        "Aspirin 300 mg và clopidogrel 300 mg nhai; thở oxy; morphin giảm đau. Chuyển tuyến "
        "Bệnh viện Đa khoa tỉnh Thanh Hóa can thiệp mạch vành, có nhân viên y tế đi kèm.",
        "Aspirin 300 mg, clopidogrel 300 mg, thở oxy, giảm đau; điện tim ST chênh lên thành "
        "dưới. Chuyển tuyến tỉnh can thiệp mạch vành.",
    ),
    "J1": Text(
        "Ho, sốt, khó thở {days} ngày, khạc đờm đục.",
        "Rale ẩm nổ đáy phổi phải. X-quang: đám mờ thùy dưới phổi phải.",
        "Chuyển điều trị nội trú.",
        "Ceftriaxon 2 g tĩnh mạch/ngày × 7 ngày, phối hợp azithromycin 500 mg × 3 ngày; thở "
        "oxy 2 ngày đầu, long đờm, hạ sốt. X-quang kiểm tra: tổn thương phổi giảm.",
        "Tái khám sau 2 tuần, chụp lại X-quang phổi.",
    ),
    "I50": Text(
        "Khó thở khi nằm, phù hai chân 1 tuần.",
        "Tĩnh mạch cổ nổi, rale ẩm hai đáy phổi, phù mềm hai chi dưới.",
        "Chuyển điều trị nội trú.",
        "Furosemid 40 mg tĩnh mạch rồi uống, spironolacton 25 mg, bisoprolol 2,5 mg, "
        "perindopril 5 mg; hạn chế muối, nước. Siêu âm tim EF 38%. Hết phù, nằm đầu thấp được.",
        "Cân hằng ngày; tái khám sau 2 tuần.",
    ),
    "K35": Text(
        "Đau bụng quanh rốn rồi khu trú hố chậu phải {hours} giờ, sốt nhẹ, buồn nôn.",
        "Ấn đau điểm McBurney, phản ứng thành bụng hố chậu phải. Bạch cầu 14 G/L. Siêu âm: "
        "ruột thừa đường kính 9 mm.",
        "Chuyển điều trị nội trú.",
        "Phẫu thuật nội soi cắt ruột thừa viêm ngày thứ nhất; ceftriaxon + metronidazol × "
        "5 ngày; giảm đau. Vết mổ khô, liền kỳ đầu.",
        "Cắt chỉ sau 7 ngày; tránh mang vác nặng 1 tháng.",
        "Phẫu thuật nội soi cắt ruột thừa",
        _RISKS_SURGERY,
    ),
    "K40": Text(
        "Khối phồng vùng bẹn phải 1 năm, to lên khi đứng, ho.",
        "Khối phồng bẹn phải 3 × 4 cm, đẩy lên được, chạm ngón khi ho.",
        "Chuyển điều trị nội trú.",
        "Phẫu thuật phục hồi thành bụng đặt lưới (Lichtenstein); kháng sinh dự phòng "
        "cefazolin; giảm đau. Vết mổ khô.",
        "Cắt chỉ sau 7 ngày; tránh lao động nặng 6 tuần.",
        "Phẫu thuật thoát vị bẹn phải đặt lưới nhân tạo",
        _RISKS_SURGERY,
    ),
    "O20": Text(
        "Thai 8 tuần, đau bụng âm ỉ, ra ít máu âm đạo.",
        "Cổ tử cung đóng, ra ít máu đỏ sẫm. Siêu âm: thai sống trong tử cung, tim thai (+).",
        "Chuyển điều trị nội trú.",
        "Nghỉ ngơi tại giường, progesteron 200 mg đặt âm đạo × 2 lần/ngày, magnesi B6. "
        "Hết ra máu, siêu âm kiểm tra thai phát triển bình thường.",
        "Khám thai lại sau 2 tuần; đến ngay khi ra máu, đau bụng.",
    ),
    "O21": Text(
        "Thai 9 tuần, nôn nhiều, không ăn uống được 3 ngày.",
        "Mệt, môi khô; xeton niệu (++).",
        "Chuyển điều trị nội trú.",
        "Truyền glucose 5% và Ringer lactat, vitamin B1, B6; metoclopramid 10 mg khi nôn; "
        "ăn chia nhỏ bữa. Hết nôn, ăn uống được.",
        "Khám thai lại sau 2 tuần.",
    ),
    "O80": Text(
        "Thai 39 tuần, đau bụng từng cơn.",
        "Cổ tử cung mở 4 cm, ối còn, ngôi chỏm; tim thai 140 lần/phút.",
        "Theo dõi chuyển dạ.",
        "Đẻ thường ngôi chỏm, con 3.100 g, Apgar 8/9; xử trí tích cực giai đoạn 3 chuyển dạ, "
        "oxytocin 10 đơn vị tiêm bắp. Mẹ và con ổn định.",
        "Cho con bú sớm, hoàn toàn; khám lại sau sinh 6 tuần; tiêm chủng cho trẻ theo lịch.",
    ),
    "O82": Text(
        "Vết mổ đẻ cũ 3 năm, thai 39 tuần chuyển dạ.",
        "Sẹo mổ cũ ngang trên vệ, ấn không đau; tim thai 145 lần/phút.",
        "Chuyển điều trị nội trú.",
        "Mổ lấy thai, gây tê tủy sống; con 3.300 g, Apgar 9/10; kháng sinh dự phòng "
        "cefazolin 2 g; vết mổ khô, mẹ và con ổn định.",
        "Cắt chỉ sau 7 ngày; khám lại sau sinh 6 tuần.",
        "Mổ lấy thai (vết mổ đẻ cũ), gây tê tủy sống",
        _RISKS_SURGERY,
    ),
    "I63": Text(
        "Đột ngột yếu nửa người, nói khó {hours} giờ trước khi vào viện.",
        "Glasgow 14 điểm, liệt nửa người, sức cơ 2/5; HA 180/100 mmHg. CT sọ não: nhồi máu "
        "vùng bao trong.",
        "Chuyển điều trị nội trú.",
        "Aspirin 100 mg, atorvastatin 40 mg, kiểm soát huyết áp, chống loét, tập phục hồi "
        "chức năng sớm. Sức cơ 3/5 khi ra viện, tự ăn được.",
        "Tập phục hồi chức năng tại nhà; tái khám sau 2 tuần.",
    ),
    "T60": Text(
        "Uống thuốc trừ sâu {hours} giờ trước, nôn, vã mồ hôi.",
        "Đồng tử co, tăng tiết đờm dãi, rale ẩm hai phổi; cholinesterase giảm.",
        "Chuyển điều trị nội trú.",
        "Rửa dạ dày, than hoạt 1 g/kg; atropin tĩnh mạch đạt ngấm, PAM; theo dõi "
        "cholinesterase. Hết dấu hiệu cường phó giao cảm ngày thứ 4; khám tư vấn tâm lý.",
        "Tái khám tâm thần kinh; gia đình quản lý thuốc trừ sâu.",
    ),
    "T63": Text(
        "Bị rắn lục cắn vào bàn chân {hours} giờ trước.",
        "Hai dấu răng mu bàn chân, sưng nề đến cổ chân; đông máu 20 phút không đông.",
        "Chuyển điều trị nội trú.",
        "Bất động chi, truyền huyết thanh kháng nọc rắn lục tre 3 lọ; giảm đau, SAT. Đông "
        "máu trở về bình thường, chân bớt sưng.",
        "Tái khám sau 1 tuần.",
    ),
    "S06": Text(
        "Tai nạn giao thông {hours} giờ trước, đau đầu, nôn 1 lần.",
        "Glasgow 15 điểm; không dấu thần kinh khu trú. CT sọ não không có máu tụ.",
        "Chuyển điều trị nội trú.",
        "Theo dõi tri giác, giảm đau paracetamol, chống nôn; nghỉ ngơi. Hết đau đầu, không nôn.",
        "Đến ngay khi đau đầu tăng, nôn, lơ mơ, co giật.",
    ),
    "S52": Text(
        "Ngã chống tay {hours} giờ trước, sưng đau biến dạng cổ tay phải.",
        "Cổ tay biến dạng hình lưng dĩa; X-quang: gãy đầu dưới xương quay phải.",
        "Chuyển điều trị nội trú.",
        "Nắn chỉnh kín, bó bột cẳng bàn tay; giảm đau; X-quang sau nắn: hết di lệch.",
        "Giữ bột 6 tuần; chụp X-quang kiểm tra sau 2 tuần.",
        "Nắn chỉnh kín, bó bột gãy đầu dưới xương quay phải (gây tê ổ gãy)",
        _RISKS_PROCEDURE,
    ),
    "S82": Text(
        "Tai nạn lao động {hours} giờ trước, đau sưng cẳng chân trái.",
        "Cẳng chân trái sưng nề, biến dạng; X-quang: gãy 1/3 giữa thân xương chày trái.",
        "Chuyển điều trị nội trú.",
        "Phẫu thuật kết hợp xương chày trái bằng nẹp vít; kháng sinh, giảm đau, chống phù "
        "nề; tập vận động thụ động. Vết mổ khô.",
        "Đi nạng, không tỳ chân 6 tuần; tái khám sau 2 tuần.",
        "Phẫu thuật kết hợp xương chày trái bằng nẹp vít",
        _RISKS_SURGERY,
    ),
    "S42": Text(
        "Ngã xe đạp {hours} giờ trước, đau vai trái.",
        "Ấn đau chói 1/3 giữa xương đòn trái; X-quang: gãy xương đòn di lệch ít.",
        "Chuyển điều trị nội trú.",
        "Cố định băng số 8, giảm đau, theo dõi mạch, cảm giác chi. Đỡ đau.",
        "Giữ băng số 8 trong 4 tuần; tái khám sau 2 tuần.",
    ),
    "K56": Text(
        "Đau bụng từng cơn, nôn, bí trung đại tiện {days} ngày.",
        "Bụng chướng, quai ruột nổi; X-quang: nhiều mức nước hơi ruột non.",
        "Chuyển điều trị nội trú.",
        "Nhịn ăn, đặt sonde dạ dày hút dịch, bù dịch điện giải, kháng sinh; theo dõi sát. "
        "Trung tiện lại sau 48 giờ, không phải phẫu thuật.",
        "Ăn chín uống sôi, tránh ăn nhiều chất xơ khó tiêu; tái khám sau 2 tuần.",
    ),
    "K92": Text(
        "Nôn ra máu, đi ngoài phân đen {days} ngày, choáng váng.",
        "Da niêm mạc nhợt, mạch 105 lần/phút, HA 100/60 mmHg. Hb 78 g/L.",
        "Chuyển điều trị nội trú.",
        "Truyền 2 đơn vị khối hồng cầu, esomeprazol 80 mg tĩnh mạch rồi 8 mg/giờ; nội soi: "
        "loét hành tá tràng Forrest IIb. Không tái xuất huyết, Hb 95 g/L khi ra viện.",
        "Kiêng rượu bia; esomeprazol 40 mg/ngày × 8 tuần; tái khám sau 4 tuần.",
    ),
    "K85": Text(
        "Đau thượng vị dữ dội lan ra sau lưng, nôn, sau bữa nhậu.",
        "Bụng chướng, ấn đau thượng vị; amylase máu 1250 U/L; siêu âm tụy phù nề.",
        "Chuyển điều trị nội trú.",
        "Nhịn ăn, truyền dịch tích cực, giảm đau, kháng tiết. Hết đau, ăn lại được từ ngày thứ 5.",
        "Kiêng rượu bia tuyệt đối; ăn ít mỡ; tái khám sau 2 tuần.",
    ),
    "R56": Text(
        "Sốt cao, co giật toàn thân 1 cơn khoảng 2 phút tại nhà.",
        "Tỉnh, không dấu thần kinh khu trú, không cứng gáy; họng đỏ.",
        "Chuyển điều trị nội trú.",
        "Hạ sốt tích cực, diazepam bơm hậu môn khi co giật; viêm họng: amoxicillin. Không co "
        "giật lại, hết sốt.",
        "Hướng dẫn gia đình hạ sốt sớm, xử trí khi trẻ co giật.",
    ),
}

_DEFAULT = Text(
    "{reason}. Diễn biến {days} ngày nay.",
    "Tỉnh, tiếp xúc tốt. Tim phổi chưa phát hiện bất thường.",
    "Điều trị theo phác đồ; hướng dẫn theo dõi tại nhà.",
    "Điều trị nội khoa theo phác đồ, theo dõi diễn biến; bệnh ổn định.",
    "Tái khám khi có dấu hiệu bất thường.",
)


def text_for(code: str | None) -> Text:
    """The longest TEXTS key that `code` starts with."""
    code = code or ""
    best = ""
    for key in TEXTS:
        if code.startswith(key) and len(key) > len(best):
            best = key
    return TEXTS[best] if best else _DEFAULT


def vitals(rng: random.Random, age: int) -> str:
    temp = f"{rng.choice((36.6, 36.8, 37.0, 37.2, 37.5, 37.8, 38.2, 38.5))}".replace(".", ",")
    if age < 12:
        pulse = rng.randint(90, 130)
        return f"Tỉnh, nhiệt độ {temp} °C, mạch {pulse} lần/phút."
    pulse = rng.randint(68, 98)
    sys = rng.choice((110, 120, 120, 130, 130, 140, 150))
    dia = rng.choice((70, 70, 80, 80, 90))
    return f"Tỉnh, tiếp xúc tốt. Mạch {pulse} lần/phút, HA {sys}/{dia} mmHg, nhiệt độ {temp} °C."


# --- Credentials -------------------------------------------------------------------------


def issue_credentials(facility: Facility, staff: dict[str, User], progress: Progress) -> None:
    """The facility's CA, seal and timestamp keys; a certificate for each doctor, nurse
    and laboratory technician."""
    from benhan.signing import pki

    pki.ensure_facility_pki(facility)
    signers = [u for u in staff.values() if u.role in (Role.DOCTOR, Role.NURSE, Role.LAB_TECH)]
    for i, user in enumerate(signers, 1):
        if pki.active_credential(user) is None:
            pki.issue_staff_credential(user, SIGNING_PIN)
        progress("signing certificates", i, len(signers))


# --- Planning -------------------------------------------------------------------------------


@dataclass
class Plan:
    encounter: Encounter
    form: str
    state: str
    consent: bool = False
    amendment: int | None = None  # index into _AMENDMENTS

    @property
    def when(self) -> datetime:
        return self.encounter.ended_at or self.encounter.started_at


def _spread(rng: random.Random, items: list[Encounter], k: int) -> list[Encounter]:
    """k encounters spread evenly over time: one drawn from each k-th of the list."""
    items = sorted(items, key=lambda e: (e.started_at, e.pk))
    n = len(items)
    if k >= n:
        return items
    return [rng.choice(items[i * n // k : (i + 1) * n // k]) for i in range(k)]


def _allocate(total: int) -> list[str]:
    """States for `total` records of finished encounters, most advanced first."""
    if total < len(STATES):
        return list(STATES[:total])
    counts = {s: max(1, round(total * share)) for s, share in _SHARES.items()}
    counts[STORED] = total - sum(counts.values())
    return [s for s in STATES for _ in range(counts[s])]


def plan(rng: random.Random, facility: Facility, total: int) -> list[Plan]:
    """Which encounters get a record, with which form, and how far each record goes."""
    available = set(formtypes.REGISTRY)
    encounters = list(
        Encounter.objects.filter(facility=facility)
        .select_related("patient", "department", "attending")
        .prefetch_related("diagnoses")
    )
    sources = {e.source_id for e in encounters if e.source_id}
    finished = {"ip": [], "er": [], "op": []}
    still_open = []
    for e in encounters:
        if e.pk in sources or e.attending_id is None:
            continue  # a visit that became an admission: the admission has the record
        if e.status == EncounterStatus.OPEN:
            still_open.append(e)
        elif any(d.is_main and d.retired_at is None for d in e.diagnoses.all()):
            group = {EncounterKind.INPATIENT: "ip", EncounterKind.EMERGENCY: "er"}
            finished[group.get(e.kind, "op")].append(e)
    form_for = {
        EncounterKind.INPATIENT: DISCHARGE,
        EncounterKind.EMERGENCY: DISCHARGE,
        EncounterKind.OUTPATIENT: OUTPATIENT,
    }
    if not {DISCHARGE, OUTPATIENT} <= available:
        return []

    n_open = min(len(still_open), max(1, round(total * _OPEN_SHARE))) if total >= 4 else 0
    n_fin = total - n_open
    want = {"ip": round(n_fin * 0.42), "er": round(n_fin * 0.07)}
    want["op"] = n_fin - want["ip"] - want["er"]
    # Where one kind runs short, take more of the others.
    picked: dict[str, list[Encounter]] = {}
    short = 0
    for group in ("ip", "er", "op"):
        k = min(want[group] + short, len(finished[group]))
        short = want[group] + short - k
        picked[group] = _spread(rng, finished[group], k)
    if short:
        extra = [e for e in finished["ip"] + finished["er"] if e not in picked["ip"] + picked["er"]]
        picked["ip"] += extra[:short]

    plans = [Plan(e, form_for[e.kind], "") for g in ("ip", "er", "op") for e in picked[g]]
    # Older encounters are further along; a few days' jitter mixes the states a little.
    plans.sort(key=lambda p: p.when + timedelta(days=rng.uniform(-12, 12)))
    for p, state in zip(plans, _allocate(len(plans)), strict=True):
        p.state = state
    _fix_partials(plans)
    plans += [Plan(e, form_for[e.kind], DRAFT) for e in _spread(rng, still_open, n_open)]
    for p in plans:
        code = _main_code(p.encounter)
        p.consent = (
            CONSENT in available
            and p.form == DISCHARGE
            and p.encounter.kind == EncounterKind.INPATIENT
            and bool(text_for(code).procedure)
        )
    # Two amendments: a stored discharge paper and a sealed or stored outpatient record.
    for i, (form, states) in enumerate(((DISCHARGE, (STORED,)), (OUTPATIENT, (SEALED, STORED)))):
        candidate = next((p for p in plans if p.form == form and p.state in states), None)
        if candidate is not None:
            candidate.amendment = i
    return plans


def _fix_partials(plans: list[Plan]) -> None:
    """Only forms with two staff signatures can be partially signed: swap states so that
    the partially signed records are discharge papers."""
    two = {p.form for p in plans if len(formtypes.get(p.form).signers) > 1}
    for i, p in enumerate(plans):
        if p.state != PARTIAL or p.form in two:
            continue
        # The nearest two-signature record that is not partial takes the state.
        others = sorted(
            (j for j, q in enumerate(plans) if q.form in two and q.state != PARTIAL),
            key=lambda j: abs(j - i),
        )
        if others:
            j = others[0]
            p.state, plans[j].state = plans[j].state, PARTIAL
        else:
            p.state = COMPLETED


def _main_code(e: Encounter) -> str | None:
    return next((d.code_id for d in e.diagnoses.all() if d.is_main and d.retired_at is None), None)


# --- Making the records -----------------------------------------------------------------------


class Clinic:
    """Who signs what: the demo staff by username, departments' heads and members."""

    def __init__(
        self, staff: dict[str, User], heads: dict[str, str], members: dict[str, list[str]]
    ):
        self.staff = staff
        self.heads = heads
        self.members = members
        self.officer = next(u for u in staff.values() if u.role == Role.RECORDS_OFFICER)

    def signer(self, slot: formtypes.SignatureSlot, encounter: Encounter, done: set[int]) -> User:
        """Who signs `slot`: the attending doctor; for "head", the head of department (or,
        when the head is the attending doctor, another doctor of the department)."""
        dept = encounter.department.code
        if slot.attending_only and encounter.attending is not None:
            candidates = [encounter.attending]
        elif slot.slot == "head":
            candidates = [self.staff[n] for n in (self.heads.get(dept), *self.members[dept]) if n]
        else:
            candidates = [encounter.attending, *(self.staff[n] for n in self.members[dept])]
        for user in candidates:
            if user is not None and user.role in slot.roles and user.pk not in done:
                return user
        raise LookupError(f"nobody in {dept} can sign {slot.slot}")

    def witness(self, encounter: Encounter) -> User:
        """Who stands by the tablet while the patient signs: a nurse of the department."""
        nurses = [self.staff[n] for n in self.members[encounter.department.code]
                  if self.staff[n].role == Role.NURSE]  # fmt: skip
        return nurses[0] if nurses else encounter.attending


def demo_strokes(rng: random.Random) -> Any:
    """A hand-drawn-looking signature: a looping stroke and an underline, with the point
    times a finger on a tablet would give (one point every ~16 ms)."""
    import math

    from benhan.records.patient_sign import Strokes

    t = int(timezone.now().timestamp() * 1000)
    strokes = []
    loops, amp, slant = rng.randint(3, 5), rng.uniform(22, 34), rng.uniform(0.2, 0.45)
    pts = []
    for i in range(loops * 14):
        a = i / 14 * 2 * math.pi
        y = 90 - amp * math.sin(a) - 8 * math.sin(a / 3)
        x = 60 + i * 5.2 + slant * (90 - y) + 9 * math.cos(a)
        t += rng.randint(12, 20)
        pts.append((round(x, 1), round(y, 1), t, 0.5))
    strokes.append(pts)
    t += rng.randint(200, 500)
    start, end = rng.uniform(50, 80), 60 + loops * 14 * 5.2 + rng.uniform(0, 30)
    under = []
    for i in range(16):
        t += rng.randint(10, 16)
        under.append(
            (round(start + (end - start) * i / 15, 1), round(128 + 3 * math.sin(i), 1), t, 0.5)
        )
    strokes.append(under)
    return Strokes(strokes=strokes, width=700, height=233, ratio=2)


def _fill(form: formtypes.FormType, e: Encounter, rng: random.Random, *, full: bool) -> dict:
    """Field values a doctor would type, by the encounter's main diagnosis."""
    text = text_for(_main_code(e))
    patient = e.patient
    hours = rng.randint(1, 6)
    days = rng.randint(2, 5)
    history = text.history.format(days=days, hours=hours, reason=e.reason)
    values: dict[str, Any] = {}
    if form.code == OUTPATIENT:
        values = {
            "history": history,
            "examination": vitals(rng, patient.age()) + " " + text.exam,
            "treatment": text.treatment,
            "follow_up": e.discharge_note or text.follow_up,
        }
    elif form.code == DISCHARGE:
        if e.kind == EncounterKind.INPATIENT:
            course = text.inpatient or text.treatment
        else:
            course = text.emergency or text.treatment
        # Advice after an ordinary discharge; a referral or a death says only what happened.
        advice = (
            (e.discharge_note, text.follow_up) if e.discharge_type == "1" else (e.discharge_note,)
        )
        values = {"treatment": course, "notes": " ".join(x for x in advice if x)}
    elif form.code == CONSENT:
        values = {"procedure": text.procedure, "risks": text.risks}
        if patient.age() < 16 and patient.emergency_name:
            values["representative_name"] = patient.emergency_name
            values["representative_relation"] = patient.emergency_relation
    values = {k: v for k, v in values.items() if v is not None}
    if not full:
        # A draft in progress: the doctor has not written the treatment yet.
        values.pop("treatment", None)
        values.pop("follow_up", None)
    return values


def _missing(form: formtypes.FormType, draft: dict, e: Encounter) -> dict:
    """Plain values for required fields this module does not know (a form changed since)."""
    when = timezone.localtime(e.ended_at or e.started_at)
    plain = {
        "text": "Không",
        "textarea": "Không",
        "datetime": when.strftime("%d/%m/%Y %H:%M"),
        "date": when.strftime("%d/%m/%Y"),
        "number": "1",
    }
    out = {}
    for f in form.fields:
        if f.required and str(draft.get(f.name) or "").strip() == "":
            value = f.choices[0][0] if f.kind == "choice" and f.choices else plain.get(f.kind)
            if value:
                out[f.name] = value
    return out


def _sign_all(clinic: Clinic, doc: Document, encounter: Encounter, *, upto: int | None) -> None:
    slots = doc.type.signers if upto is None else doc.type.signers[:upto]
    done: set[int] = set()
    for slot in slots:
        user = clinic.signer(slot, encounter, done)
        actions.do_sign(Actor(user), doc, SIGNING_PIN)
        done.add(user.pk)


def _document(
    clinic: Clinic, rec: Record, form_code: str, state: str, rng: random.Random
) -> Document:
    """One document of the record, taken as far as `state`."""
    e = rec.encounter
    author = Actor(e.attending)
    form = formtypes.get(form_code)
    doc = actions.do_create_document(author, rec, form_code)
    doc = actions.do_save_draft(author, doc, _fill(form, e, rng, full=state != DRAFT))
    if state == DRAFT:
        return doc
    extra = _missing(form, doc.draft, e)
    if extra:
        doc = actions.do_save_draft(author, doc, extra)
    actions.do_complete(author, doc)
    doc.refresh_from_db()  # the actions lock and change their own copy
    if state == COMPLETED:
        return doc
    if form.patient_signs:
        # On the tablet, before the staff sign: their signatures cover the drawing.
        signing = actions.PatientSigning(
            shown_sha256=doc.current_version().current_sha256, outcome="signed",
            identity="known",
            by_representative=bool(doc.draft.get("representative_name")
                                   and doc.draft.get("representative_relation")),
            representative_name=doc.draft.get("representative_name", ""),
            relation=doc.draft.get("representative_relation", ""), strokes=demo_strokes(rng),
            client_time=timezone.now().isoformat(), pointer="touch", screen="800x1280@1.5",
            user_agent="Mozilla/5.0 (Linux; Android 11; Galaxy Tab A7 Lite) (demo)",
        )  # fmt: skip
        actions.do_patient_sign(Actor(clinic.witness(e)), doc, signing)
    _sign_all(clinic, doc, e, upto=1 if state == PARTIAL else None)
    if state in (SEALED, STORED):
        actions.do_seal(Actor(clinic.officer), doc)
    return doc


def _amend(clinic: Clinic, doc: Document, index: int) -> None:
    reason, field, addition = _AMENDMENTS[index]
    e = doc.record.encounter
    author = Actor(e.attending)
    if field not in {f.name for f in doc.type.fields}:
        field = doc.type.fields[-1].name
    doc = actions.do_amend(author, doc, reason)
    doc = actions.do_save_draft(author, doc, {field: (doc.draft.get(field) or "") + addition})
    actions.do_complete(author, doc)
    doc.refresh_from_db()  # the actions lock and change their own copy
    _sign_all(clinic, doc, e, upto=None)
    actions.do_seal(Actor(clinic.officer), doc)


def make_record(clinic: Clinic, p: Plan, rng: random.Random) -> Record:
    e = p.encounter
    rec = actions.do_open_record(Actor(e.attending), e)
    if p.consent:
        # Signed before the operation; sealed when the records office takes the record.
        _document(clinic, rec, CONSENT, SEALED if p.state in (SEALED, STORED) else SIGNED, rng)
    doc = _document(clinic, rec, p.form, p.state, rng)
    if p.amendment is not None:
        _amend(clinic, doc, p.amendment)
    if p.state == STORED:
        actions.do_close_record(Actor(clinic.officer), rec)
    # Demo data only: the actions stamp "now", so the record and its documents are dated
    # back to the encounter here, for the dashboard's per-month figures to spread over the
    # four months. Versions, signatures, the seal and every audit event keep their real
    # times: those are signed, timestamped and chained.
    end = e.ended_at or timezone.now()
    opened = min(e.started_at + timedelta(minutes=rng.randint(2, 10)), end)
    Record.objects.filter(pk=rec.pk).update(created_at=opened)
    written = opened
    if e.kind == EncounterKind.INPATIENT and e.ended_at:
        written = max(opened, e.ended_at - timedelta(minutes=rng.randint(20, 90)))
    Document.objects.filter(record=rec).update(created_at=written)
    if p.consent:
        Document.objects.filter(record=rec, form_type=CONSENT).update(created_at=opened)
    return rec


def seed_records(
    facility: Facility,
    clinic: Clinic,
    rng: random.Random,
    total: int,
    progress: Progress,
) -> Counter:
    """About `total` records in every state; returns how many ended in each state."""
    plans = plan(rng, facility, total) if total else []
    counts: Counter = Counter()
    for i, p in enumerate(plans, 1):
        make_record(clinic, p, rng)
        counts[p.state] += 1
        progress("records", i, len(plans))
    return counts
