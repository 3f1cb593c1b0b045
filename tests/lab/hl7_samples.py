"""HL7 v2 messages from laboratory analyzers, written for these tests.

Each sample follows the layout of a public interface document, named in its comment;
the content (patients, barcodes, values, times) is invented, and no vendor example is
copied. Segments are separated by CR as on the wire; the MLLP frame is not included.
"""

from __future__ import annotations


def _msg(*segments: str, charset: str = "utf-8") -> bytes:
    return ("\r".join(segments) + "\r").encode(charset)


# After the Mindray BS-series chemistry analyzer host interface manual (BS-200/BS-240
# family, HL7 2.3.1 ORU^R01): MSH-16 "0" means a patient sample result, OBR-2 carries
# the sample barcode and OBR-3 the analyzer's sample number, OBR-4 "Mindray^<model>";
# each OBX has the test number in OBX-3 and the test name in OBX-4, the unit, the
# reference range, the flag (H/L/N), F, and the measuring time in OBX-14.
MINDRAY_BS_CHEMISTRY = _msg(
    "MSH|^~\\&|Mindray|BS-240|||20240611093015||ORU^R01|1024|P|2.3.1||||0||ASCII|||",
    "PID|1||BN-000123||Tran Van Binh||19650312000000|M|||||||||||||||||||||",
    "OBR|1|2406110012|17|Mindray^BS-240|N|20240611080500|20240611091500|||||||"
    "20240611080500|serum|||||||||||||||||||||||||||||||||",
    "OBX|1|NM|1|GLU|7.8|mmol/L|3.9-6.4|H|||F|||20240611092010||||",
    "OBX|2|NM|2|UREA|5.1|mmol/L|2.5-7.5|N|||F|||20240611092040||||",
    "OBX|3|NM|3|CREA|55|umol/L|62-106|L|||F|||20240611092110||||",
    "OBX|4|NM|4|AST|52|U/L|0-40|H|||F|||20240611092140||||",
    "OBX|5|NM|5|ALT|61|U/L|0-41|H|||F|||20240611092210||||",
)

# The same BS-series layout from an analyzer set to UTF-8, with a Vietnamese name in
# PID-5 (BS-series software in Vietnam is localised; MSH-18 then says UNICODE UTF-8).
MINDRAY_BS_VIETNAMESE = _msg(
    "MSH|^~\\&|Mindray|BS-240|||20240611094500||ORU^R01|1025|P|2.3.1||||0||UNICODE UTF-8|||",
    "PID|1||BN-000124||Nguyễn Thị Hằng||19800101000000|F|||||||||||||||||||||",
    "OBR|1|2406110013|18|Mindray^BS-240|N|20240611081000|20240611092000|||||||"
    "20240611081000|serum||||||||||||||||",
    "OBX|1|NM|1|GLU|5.2|mmol/L|3.9-6.4|N|||F|||20240611093000||||",
)

# After the Mindray BS-series manual's quality-control result: the same ORU^R01 with
# MSH-16 "2" (QC); OBR-2 carries no barcode, OBR-3 the control's number.
MINDRAY_BS_QC = _msg(
    "MSH|^~\\&|Mindray|BS-240|||20240611070210||ORU^R01|1001|P|2.3.1||||2||ASCII|||",
    "PID|1||||||||||||||||||||||||||||||",
    "OBR|1||2|Mindray^BS-240|N||20240611070000||||||||serum||||||||||||||||",
    "OBX|1|NM|1|GLU|5.54|mmol/L|5.10-6.30|N|||F|||20240611070150||||",
    "OBX|2|NM|4|AST|41|U/L|36-48|N|||F|||20240611070150||||",
)

# After the Mindray BC-series hematology analyzer HL7 interface (BC-5150/BC-5380
# family, HL7 2.3.1 ORU^R01, MSH-18 "UNICODE"): PID-3 with the medical record number
# ("^^^^MR"), the sample id in OBR-3 (filler order number), OBR-4
# "00001^Automated Count^99MRC"; OBX-3 LOINC codes ("^LN") for the parameters and
# Mindray local codes ("^99MRC") for modes and histograms; flags as repetitions
# ("H~N": abnormal high, normal reference group); histograms as ED values
# (^Image^BMP^Base64^<data>) with their discriminator lines as NM.
MINDRAY_BC_CBC = _msg(
    "MSH|^~\\&|Mindray|BC-5380|||20240611101205||ORU^R01|77|P|2.3.1||||||UNICODE",
    "PID|1||BN-000123^^^^MR||^Tran Van Binh||19650312000000|Male",
    "PV1|1|Outpatient|Khoa Noi^^12",
    "OBR|1||2406110014|00001^Automated Count^99MRC|||20240611100500|||||||"
    "20240611095000||||||||||HM||||||||lab1",
    "OBX|1|IS|08001^Take Mode^99MRC||O||||||F",
    "OBX|2|IS|08002^Blood Mode^99MRC||W||||||F",
    "OBX|3|IS|08003^Test Mode^99MRC||CBC+DIFF||||||F",
    "OBX|4|NM|30525-0^Age^LN||59|yr|||||F",
    "OBX|5|NM|6690-2^WBC^LN||11.62|10*9/L|4.00-10.00|H~N|||F",
    "OBX|6|NM|751-8^NEU#^LN||8.91|10*9/L|2.00-7.00|H~N|||F",
    "OBX|7|NM|731-0^LYM#^LN||1.87|10*9/L|0.80-4.00|N|||F",
    "OBX|8|NM|742-7^MON#^LN||0.61|10*9/L|0.12-1.20|N|||F",
    "OBX|9|NM|711-2^EOS#^LN||0.19|10*9/L|0.02-0.50|N|||F",
    "OBX|10|NM|704-7^BAS#^LN||0.04|10*9/L|0.00-0.10|N|||F",
    "OBX|11|NM|770-8^NEU%^LN||76.7|%|50.0-70.0|H~N|||F",
    "OBX|12|NM|736-9^LYM%^LN||16.1|%|20.0-40.0|L~N|||F",
    "OBX|13|NM|789-8^RBC^LN||4.21|10*12/L|4.30-5.80|L~N|||F",
    "OBX|14|NM|718-7^HGB^LN||118|g/L|130-175|L~N|||F",
    "OBX|15|NM|4544-3^HCT^LN||36.2|%|40.0-50.0|L~N|||F",
    "OBX|16|NM|787-2^MCV^LN||86.0|fL|82.0-100.0|N|||F",
    "OBX|17|NM|785-6^MCH^LN||28.0|pg|27.0-34.0|N|||F",
    "OBX|18|NM|786-4^MCHC^LN||326|g/L|316-354|N|||F",
    "OBX|19|NM|788-0^RDW-CV^LN||13.9|%|11.0-16.0|N|||F",
    "OBX|20|NM|777-3^PLT^LN||263|10*9/L|125-350|N|||F",
    "OBX|21|NM|32623-1^MPV^LN||9.8|fL|6.5-12.0|N|||F",
    "OBX|22|ED|15000^WBC Histogram. BMP^99MRC||^Image^BMP^Base64^Qk02AAAAAAAAADYAAAAoAAAA||||||F",
    "OBX|23|NM|15050^WBC Histogram Left Line^99MRC||9||||||F",
    "OBX|24|ED|15100^RBC Histogram. BMP^99MRC||^Image^BMP^Base64^Qk1CAAAAAAAAAD4AAAAoAAAA||||||F",
    "OBX|25|ED|15200^PLT Histogram. BMP^99MRC||^Image^BMP^Base64^Qk0+AAAAAAAAADYAAAAoAAAA||||||F",
)

# A hematology result with the barcode only in PID-2 (OBR-2 and OBR-3 empty), the
# layout the brief ascribes to some Mindray hematology analyzers; the structure is
# otherwise the BC-series one above. Not checked against a manual.
MINDRAY_HEMATOLOGY_PID2 = _msg(
    "MSH|^~\\&|Mindray|BC-30s|||20240611102000||ORU^R01|12|P|2.3.1||||||UNICODE",
    "PID|1|2406110015|||^Le Van Cuong",
    "OBR|1|||00001^Automated Count^99MRC|||20240611101500",
    "OBX|1|NM|6690-2^WBC^LN||6.40|10*9/L|4.00-10.00|N|||F",
    "OBX|2|NM|718-7^HGB^LN||142|g/L|130-175|N|||F",
)

# After IHE PaLM Technical Framework, LAW profile, LAB-29 "AWOS status change"
# (OUL^R22, HL7 2.5.1): MSH-21 "LAB-29^IHE", PID (here a Vietnamese name in UTF-8),
# SPM with the specimen id in SPM-2 as EIP (placer id & namespace ^ filler id &
# namespace), the specimen type from HL7 table 0487, role P; SAC with the container;
# one OBR per work order step, OBX with UCUM units, OBX-18 the equipment and OBX-19 the
# analysis time; an ST "<0.5" below the measuring range and an SN "<^0.010".
# OBR-2 is empty here (a reflex test the analyzer added without an order), so the
# specimen is found in SPM-2.
IHE_LAW_OUL_R22 = _msg(
    "MSH|^~\\&|C311|LAB|BENHAN|TTYT-CUCHI|20240611103512+0700||OUL^R22^OUL_R22|A-55012|P|"
    "2.5.1|||NE|AL||UNICODE UTF-8|||LAB-29^IHE",
    "PID|1||BN-000124^^^BENHAN^MR||Nguyễn^Thị Hằng||19800101|F",
    "SPM|1|2406110016&BENHAN^A-0042&C311||SER^Serum^HL70487|||||||P",
    "SAC|||2406110016",
    "OBR|1|||CRP^C-reactive protein^L",
    "ORC|SC||||CM",
    "OBX|1|ST|CRP^C-reactive protein^L||<0.5|mg/L^^UCUM|0-5|N|||F|||20240611102900||||"
    "C311^Roche~1501-77^SN|20240611103010",
    "OBR|2|||TNT^Troponin T hs^L",
    "ORC|SC||||CM",
    "OBX|1|SN|TNT^Troponin T hs^L||<^0.010|ug/L^^UCUM|<0.014|N|||F|||||||C311|20240611103100",
    "OBR|3|||GLU^Glucose^L",
    "ORC|SC||||CM",
    "OBX|1|NM|GLU^Glucose^L||11.4|mmol/L^^UCUM|3.9-6.4|H|||F|||20240611102950||||C311|"
    "20240611103110",
    "NTE|1|L|Lipemic sample\\T\\diluted 1:2",
)

# After IHE LAW LAB-29 for a control run: no PID, SPM-11 specimen role "Q" (HL7 table
# 0369: control specimen), the control lot in SPM-2.
IHE_LAW_QC = _msg(
    "MSH|^~\\&|C311|LAB|BENHAN||20240611065900+0700||OUL^R22^OUL_R22|A-54990|P|2.5.1|||NE|AL"
    "||UNICODE UTF-8|||LAB-29^IHE",
    "SPM|1|PCCC1-LOT4471||SER^Serum^HL70487|||||||Q",
    "OBR|1|||GLU^Glucose^L",
    "OBX|1|NM|GLU^Glucose^L||5.61|mmol/L^^UCUM|5.2-6.0|N|||F|||||||C311|20240611065800",
)

# After the Mindray BS-series host interface manual's host query (QRY^Q02, 2.3.1):
# QRD-1 query time, QRD-2 R, QRD-3 D, QRD-4 the query id, QRD-7 RD, QRD-8 the sample
# barcode, QRD-9 OTH, QRD-12 T; QRF-1 the analyzer model, QRF-2/3 a time window,
# QRF-6..8 RCT/COR/ALL.
MINDRAY_QRY_Q02 = _msg(
    "MSH|^~\\&|Mindray|BS-240|||20240611080102||QRY^Q02|31|P|2.3.1||||||ASCII|||",
    "QRD|20240611080102|R|D|31|||RD|2406110012|OTH|||T|",
    "QRF|BS-240|20240611000000|20240611235959|||RCT|COR|ALL||",
)

# After IHE LAW LAB-27 "Query for AWOS" (QBP^Q11, 2.5.1): QPD-1
# "WOS^Work Order Step^IHE_LABTF", QPD-2 the query tag, QPD-3 the specimen's container
# id; RCP "I" immediate priority, R real-time response.
IHE_QBP_Q11 = _msg(
    "MSH|^~\\&|C311|LAB|BENHAN|TTYT-CUCHI|20240611080102+0700||QBP^Q11^QBP_Q11|Q-8812|P|2.5.1"
    "|||NE|AL||UNICODE UTF-8|||LAB-27^IHE",
    "QPD|WOS^Work Order Step^IHE_LABTF|QT-8812|2406110016",
    "RCP|I||R",
)

# After HL7 v2.4 chapter 7 (observation reporting), an ORU^R01 from an analyzer
# middleware: placer order number in OBR-2 (ours, with our namespace), filler order
# number in OBR-3, observation times with an offset and without seconds, escaped text
# (\T\ for "&", \S\ for "^") and a comment (NTE) after a result.
GENERIC_V24_ORU = _msg(
    "MSH|^~\\&|MIDDLEWARE|LAB|BENHAN|TTYT-CUCHI|202406111045+0700||ORU^R01|MW-000981|P|2.4"
    "|||AL|NE||8859/1",
    "PID|1||BN-000125^^^BENHAN^MR||Müller^Hans||19700202|M",
    "ORC|RE|2406110017^BENHAN|F-77^LAB",
    "OBR|1|2406110017^BENHAN|F-77^LAB|ELEC^Electrolytes^L|||202406111020+0700",
    "OBX|1|NM|NA^Sodium^L||139|mmol/L|135-145|N|||F|||202406111040+0700",
    "OBX|2|NM|K^Potassium^L||5.9|mmol/L|3.5-5.1|H|||F|||202406111040+0700",
    "NTE|1|L|Hemolysis index 2+: potassium may be falsely high",
    "OBX|3|ST|NAK^Na\\T\\K ratio^L||23.6|||N|||F|||202406111040+0700",
    "OBX|4|CE|HEMO^Hemolysis^L||2+^Moderate\\S\\visible^L||||||F",
    charset="latin-1",
)

# An analyzer's acknowledgement of our OML^O33 (IHE LAW LAB-28, ACK^O33 2.5.1).
IHE_ACK_O33 = _msg(
    "MSH|^~\\&|C311|LAB|BENHAN|TTYT-CUCHI|20240611080104+0700||ACK^O33^ACK|K-3391|P|2.5.1",
    "MSA|AA|202406110801020007",
)

RESULT_SAMPLES = {
    "mindray_bs_chemistry": MINDRAY_BS_CHEMISTRY,
    "mindray_bs_vietnamese": MINDRAY_BS_VIETNAMESE,
    "mindray_bs_qc": MINDRAY_BS_QC,
    "mindray_bc_cbc": MINDRAY_BC_CBC,
    "mindray_hematology_pid2": MINDRAY_HEMATOLOGY_PID2,
    "ihe_law_oul_r22": IHE_LAW_OUL_R22,
    "ihe_law_qc": IHE_LAW_QC,
    "generic_v24_oru": GENERIC_V24_ORU,
}
ALL_SAMPLES = {
    **RESULT_SAMPLES,
    "mindray_qry_q02": MINDRAY_QRY_Q02,
    "ihe_qbp_q11": IHE_QBP_Q11,
    "ihe_ack_o33": IHE_ACK_O33,
}
