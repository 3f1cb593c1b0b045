"""The laboratory and diagnostic imaging: catalogue, orders, specimens, analyzers
(HL7 v2 over MLLP, ASTM E1381/E1394), review and signing, results to the wards."""
