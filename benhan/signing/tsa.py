"""The facility's built-in RFC 3161 timestamp service.

`FacilityTimeStamper` is pyHanko's in-process DummyTimeStamper made real: signed with
the facility's TSA credential (ECDSA or RSA, key kept loaded), with Bệnh Án's own
policy OID. The same object answers POST /pki/tsa, so other tools can use it.
"""

from __future__ import annotations

import datetime as dt
import logging

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from django.conf import settings
from pyhanko.sign.general import simple_cms_attribute
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from pyhanko.sign.timestamps.common_utils import get_nonce
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from benhan.signing import pki

logger = logging.getLogger(__name__)

# Bệnh Án's timestamp policy: a UUID-derived OID (ITU-T X.667), no registration needed.
TSA_POLICY_OID = "2.25.141062415796446470530391880373046939405"

# Digest algorithms the service accepts in a request's message imprint.
ACCEPTED_DIGESTS = {"sha256", "sha384", "sha512"}


def to_asn1(cert) -> asn1_x509.Certificate:
    from cryptography.hazmat.primitives.serialization import Encoding

    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


class FacilityTimeStamper(DummyTimeStamper):
    """An RFC 3161 TSA in process, signing with a loaded private key."""

    def __init__(self, tsa_cert, private_key, chain=(), accuracy_seconds: int = 1):
        """tsa_cert, chain: cryptography certificates; private_key: a loaded key object."""
        self.private_key = private_key
        self.accuracy_seconds = accuracy_seconds
        super().__init__(
            tsa_cert=to_asn1(tsa_cert),
            tsa_key=None,
            certs_to_embed=SimpleCertificateStore.from_certs([to_asn1(c) for c in chain]),
        )

    def _build_tst_info(self, message_imprint, dt_, req) -> tsp.TSTInfo:
        args = {
            "version": "v1",
            "policy": tsp.ObjectIdentifier(TSA_POLICY_OID),
            "message_imprint": message_imprint,
            "serial_number": get_nonce(),
            "gen_time": dt_,
            "accuracy": {"seconds": self.accuracy_seconds},
            "tsa": asn1_x509.GeneralName(name="directory_name", value=self.tsa_cert.subject),
        }
        if req["nonce"].native is not None:
            args["nonce"] = req["nonce"]
        return tsp.TSTInfo(args)

    def _signing_cert_attr(self) -> cms.CMSAttribute:
        """The constant signing-certificate attribute, built once (asn1crypto is slow
        to serialise freshly built structures)."""
        cached = getattr(self, "_signing_cert_attr_cache", None)
        if cached is None:
            attr = simple_cms_attribute(
                "signing_certificate_v2",
                tsp.SigningCertificateV2(
                    {
                        "certs": [
                            tsp.ESSCertIDv2(
                                {
                                    "hash_algorithm": {"algorithm": "sha256"},
                                    "cert_hash": self.tsa_cert.sha256,
                                }
                            )
                        ]
                    }
                ),
            )
            cached = self._signing_cert_attr_cache = cms.CMSAttribute.load(attr.dump())
        return cached

    def _sign_tst_info(self, tst_info_data: bytes, md_algorithm: str, dt_):
        digest = hashes.Hash(_hash(md_algorithm))
        digest.update(tst_info_data)
        signed_attrs = cms.CMSAttributes(
            [
                simple_cms_attribute("content_type", "tst_info"),
                simple_cms_attribute("signing_time", cms.Time({"utc_time": core.UTCTime(dt_)})),
                self._signing_cert_attr(),
                simple_cms_attribute("message_digest", digest.finalize()),
            ]
        )
        data = signed_attrs.dump()
        signed_attrs = cms.CMSAttributes.load(data)  # later copies reuse these bytes
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            signature = key.sign(data, ec.ECDSA(_hash(md_algorithm)))
        elif isinstance(key, rsa.RSAPrivateKey):
            signature = key.sign(data, padding.PKCS1v15(), _hash(md_algorithm))
        else:  # pragma: no cover
            raise TypeError(f"unsupported TSA key {type(key).__name__}")
        return signature, signed_attrs

    def _build_signed_data(self, tst_info_data, md_algorithm, signature, signed_attrs) -> dict:
        data = super()._build_signed_data(tst_info_data, md_algorithm, signature, signed_attrs)
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            info = data["signer_infos"][0]
            info["signature_algorithm"] = algos.SignedDigestAlgorithm(
                {"algorithm": f"{md_algorithm}_ecdsa"}
            )
        return data

    def request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        imprint = req["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        if algorithm not in ACCEPTED_DIGESTS:
            return rejection("bad_alg", f"digest algorithm {algorithm} is not accepted")
        if req["req_policy"].native not in (None, TSA_POLICY_OID):
            return rejection("unaccepted_policy", "unknown policy")
        # Whole seconds: the declared accuracy is one second, and some fractional values
        # made asn1crypto's GeneralizedTime handling take ~5 s (measured: microsecond
        # 123450 -> 5.2 s, 120000 -> 0.01 s) inside pyHanko's packaging.
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        tst_info = self._build_tst_info(imprint, now, req).dump()
        signature, signed_attrs = self._sign_tst_info(tst_info, algorithm, now)
        signed_data = self._build_signed_data(tst_info, algorithm, signature, signed_attrs)
        if not req["cert_req"].native:
            # RFC 3161 § 2.4.1: certificates only when the request asks for them.
            del signed_data["certificates"]
        token = cms.ContentInfo(
            {"content_type": "signed_data", "content": cms.SignedData(signed_data)}
        )
        return tsp.TimeStampResp(
            {"status": tsp.PKIStatusInfo({"status": "granted"}), "time_stamp_token": token}
        )

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return self.request_tsa_response(req)


def _hash(name: str) -> hashes.HashAlgorithm:
    return {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[
        name.lower()
    ]


class TimeStampResponse(core.Sequence):
    """RFC 3161 TimeStampResp. asn1crypto's version requires the token, which a
    rejection must leave out."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def rejection(failure: str, text: str) -> TimeStampResponse:
    return TimeStampResponse(
        {
            "status": tsp.PKIStatusInfo(
                {
                    "status": tsp.PKIStatus("rejection"),
                    "status_string": [text],
                    "fail_info": tsp.PKIFailureInfo({failure}),
                }
            )
        }
    )


def builtin_timestamper(facility) -> FacilityTimeStamper:
    """The facility's own TSA, its key loaded (and cached) in this process."""
    cred = pki.tsa_credential(facility)
    cache_key = (cred.pk, bytes(cred.key_encrypted))
    stamper = _stampers.get(facility.pk)
    if stamper is None or stamper[0] != cache_key:
        ts = FacilityTimeStamper(cred.certificate, pki.load_service_key(cred), pki.chain(cred))
        _stampers[facility.pk] = (cache_key, ts)
        return ts
    return stamper[1]


_stampers: dict[int, tuple[tuple, FacilityTimeStamper]] = {}


def get_timestamper(facility) -> TimeStamper:
    """An HTTP client for settings.TSA_URL when configured, else the built-in TSA."""
    if settings.TSA_URL:
        return HTTPTimeStamper(settings.TSA_URL, timeout=10)
    return builtin_timestamper(facility)


def answer(request_der: bytes, facility) -> bytes:
    """The DER TimeStampResp for a DER TimeStampReq (the body of POST /pki/tsa)."""
    try:
        req = tsp.TimeStampReq.load(request_der)
        req.native  # noqa: B018 - parse everything now, not lazily later
        if req["version"].native != "v1":
            raise ValueError("version")
    except Exception:  # asn1crypto raises many kinds
        return rejection("bad_data_format", "not a DER TimeStampReq").dump()
    try:
        resp = builtin_timestamper(facility).request_tsa_response(req)
    except Exception:
        logger.exception("timestamp service failed")
        return rejection("system_failure", "timestamp service error").dump()
    return resp.dump()


__all__ = [
    "FacilityTimeStamper",
    "TimeStampResponse",
    "answer",
    "builtin_timestamper",
    "get_timestamper",
]
