"""PAdES signatures: staff signatures, the facility seal, visible stamps.

Stable API:

    sign_pdf(pdf, *, signer, field_name, page=0, box=None, stamp_lines=(), reason="",
             location="", timestamper=None, seal=False, validation_context=None,
             embed_validation_info=True) -> bytes
    signer_for_credential(credential, pin) -> Signer     (staff; WrongPin, PinLocked, …)
    seal_signer(facility) -> Signer
    signer_from_key(cert, private_key, chain) -> Signer (any loaded key)
    document_lock(pdf) -> str | None                   (why the PDF is sealed, or None)
    validation_context_for(cert) -> ValidationContext | None

Level: PAdES B-LT when the signer's CA is one of ours (or a validation context is
given): the CRLs come straight from the database (pki.facility_crls), never over HTTP,
and go into the document security store with the certificates. Otherwise B-T.
"""

from __future__ import annotations

import functools
import logging
import threading
import zlib
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

import uharfbuzz as hb
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from fontTools import subset as ft_subset
from fontTools import ttLib
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.content import PdfContent
from pyhanko.pdf_utils.font.api import FontEngine, FontEngineFactory
from pyhanko.pdf_utils.font.opentype import CIDFontType2, GlyphAccumulator, _read_ps_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import BoxConstraints
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields, signers
from pyhanko.sign.attributes import CMSAttributeProvider, SigningCertificateV2Provider
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.general import as_signing_certificate_v2, get_pyca_cryptography_hash
from pyhanko.stamp import StaticStampStyle, TextStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from benhan.signing import pki, tsa
from benhan.signing.models import CertificateAuthority, Credential

FONT = Path(__file__).resolve().parent / "fonts" / "stamp-sans.ttf"

# fontTools logs every subsetting step at INFO, for each stamp.
logging.getLogger("fontTools").setLevel(logging.WARNING)
STAMP_FONT_SIZE = 8


class DocumentSealed(pki.SigningError):
    """The PDF carries the facility seal (or another lock): nothing may be signed after it."""


class SignatureFailed(pki.SigningError):
    """pyHanko refused: e.g. the certificate is revoked or its chain is not trusted."""


# --- Signers ---


def to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return tsa.to_asn1(cert)


class LoadedKeySigner(signers.Signer):
    """A pyHanko signer holding a loaded private key object.

    pyHanko's SimpleSigner keeps the key as DER and parses it again for every raw
    signature; this one signs with the object it was given.
    """

    def __init__(self, signing_cert: x509.Certificate, private_key, chain=(), **kwargs):
        if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise TypeError(f"unsupported key {type(private_key).__name__}")
        self.private_key = private_key
        super().__init__(
            signing_cert=to_asn1(signing_cert),
            cert_registry=SimpleCertificateStore.from_certs([to_asn1(c) for c in chain]),
            **kwargs,
        )

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        algorithm = get_pyca_cryptography_hash(digest_algorithm)
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return self.private_key.sign(data, ec.ECDSA(algorithm))
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
        if mechanism.signature_algo == "rsassa_pss":
            pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
            return self.private_key.sign(data, pss, algorithm)
        return self.private_key.sign(data, padding.PKCS1v15(), algorithm)

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run=False) -> bytes:
        return self.sign_raw(data, digest_algorithm)

    # asn1crypto re-serialises a freshly built structure each time it is dumped or
    # copied, and pyHanko dumps the signed attributes three times: the constant
    # signing-certificate attribute is built once per signer, and the attributes are
    # re-loaded from their DER so that later dumps return those same bytes.

    def _signed_attr_providers(self, *args, **kwargs):
        for prov in super()._signed_attr_providers(*args, **kwargs):
            if isinstance(prov, SigningCertificateV2Provider):
                prov = self._signing_cert_provider()
            yield prov

    def _signing_cert_provider(self):
        cached = getattr(self, "_signing_cert_attr", None)
        if cached is None:
            der = as_signing_certificate_v2(self.signing_cert).dump()
            cached = self._signing_cert_attr = _ConstantAttribute(
                "signing_certificate_v2", tsp.SigningCertificateV2.load(der)
            )
        return cached

    async def signed_attrs(self, *args, **kwargs):
        attrs = await super().signed_attrs(*args, **kwargs)
        return cms.CMSAttributes.load(attrs.dump())


class _ConstantAttribute(CMSAttributeProvider):
    def __init__(self, attribute_type: str, value):
        self.attribute_type = attribute_type
        self.value = value

    async def build_attr_value(self, dry_run=False):
        return self.value


def signer_from_key(cert: x509.Certificate, private_key, chain=()) -> LoadedKeySigner:
    return LoadedKeySigner(cert, private_key, chain)


def signer_for_credential(credential: Credential, pin: str) -> LoadedKeySigner:
    """A signer with the staff member's key, unlocked by the PIN.

    Raises pki.WrongPin, pki.PinLocked, pki.CredentialUnusable. Call it outside the
    transaction of the signing action (or let WrongPin escape it only after that
    transaction committed): a rolled-back transaction would forget the wrong attempt.
    """
    if credential.kind != Credential.Kind.STAFF:
        raise ValueError("signer_for_credential is for staff credentials")
    key = pki.load_private_key(credential, pin)
    return LoadedKeySigner(credential.certificate, key, pki.chain(credential))


def seal_signer(facility) -> LoadedKeySigner:
    cred = pki.seal_credential(facility)
    return LoadedKeySigner(cred.certificate, pki.load_service_key(cred), pki.chain(cred))


# --- Locks ---


def document_lock(pdf: bytes) -> str | None:
    """Why no further signature is allowed, or None.

    A signature with a field lock on all fields, or a DocMDP "no changes" permission
    (set by the facility seal, or by a certification signature from another tool).
    """
    return _lock_reason(PdfFileReader(BytesIO(pdf), strict=False))


def _lock_reason(reader: PdfFileReader) -> str | None:
    for sig in reader.embedded_signatures:
        if sig.docmdp_level == fields.MDPPerm.NO_CHANGES:
            return f"signature {sig.field_name!r} allows no changes"
        lock = sig.fieldmdp
        if lock is not None and lock.action == fields.FieldMDPAction.ALL:
            return f"signature {sig.field_name!r} locks every field"
    return None


# --- Validation data ---


def _ca_for_issuer(cert: x509.Certificate) -> CertificateAuthority | None:
    subject = cert.issuer.rfc4514_string()
    for ca in CertificateAuthority.objects.filter(subject=subject, kind="issuing").select_related(
        "parent"
    ):
        try:
            cert.verify_directly_issued_by(ca.certificate)
        except (ValueError, TypeError, Exception):  # noqa: S112 - try the next CA
            continue
        return ca
    return None


def validation_context_for(cert: x509.Certificate) -> ValidationContext | None:
    """A context that validates a certificate of one of our facilities at signing time,
    with the CRLs taken from the database (no network). None for a foreign CA."""
    ca = _ca_for_issuer(cert)
    if ca is None:
        return None
    return ValidationContext(
        trust_roots=[to_asn1(ca.parent.certificate)],
        other_certs=[to_asn1(ca.certificate)],
        crls=pki.facility_crls(ca.facility),
        allow_fetching=False,
        revocation_mode="hard-fail",
    )


# --- Stamp font ---
#
# pyHanko's GlyphAccumulator parses the font file, and subsets and re-serialises it
# with fontTools, for every stamp: about a third of a signature's time. The stamp font
# is parsed once per process here, and the embedded subset (fontTools, the same
# options as pyHanko's, glyph ids kept) is cached by glyph set. Digits and the
# punctuation of dates and times are always in the subset, so a stamp's glyph set
# depends on the signer's name and role, not on the time: a person's next stamp
# reuses the subset.

STAMP_BASE_CHARS = "0123456789 /:.,-()"


class _StampFontData:
    """The parsed stamp font, shared read-only by every stamp of the process."""

    def __init__(self, path: Path):
        self.data = path.read_bytes()
        self.tt = ttLib.TTFont(BytesIO(self.data), lazy=False)
        self.tt.ensureDecompiled()
        self.glyph_set = self.tt.getGlyphSet()
        self.ps_name = _read_ps_name(self.tt)
        self.units_per_em = self.tt["head"].unitsPerEm
        self.hb_font = hb.Font(hb.Face(self.data))
        self.reverse_cmap = self.tt["cmap"].buildReversed()
        cmap = self.tt.getBestCmap()
        self.base_gids = frozenset(
            self.tt.getGlyphID(cmap[ord(c)]) for c in STAMP_BASE_CHARS if ord(c) in cmap
        )
        self.lock = threading.Lock()

    @functools.lru_cache(maxsize=512)  # noqa: B019 - one instance per process
    def subset(self, gids: frozenset[int]) -> bytes:
        """The font reduced to `gids` (ids kept), Flate-compressed for /FontFile2."""
        tt = ttLib.TTFont(BytesIO(self.data))
        options = ft_subset.Options(layout_closure=False)
        options.drop_tables += ["GPOS", "GDEF", "GSUB"]
        options.retain_gids = True
        subsetter = ft_subset.Subsetter(options=options)
        subsetter.populate(gids=sorted(gids))
        subsetter.subset(tt)
        out = BytesIO()
        tt.save(out)
        return zlib.compress(out.getvalue())


@functools.cache
def _stamp_font_data() -> _StampFontData:
    return _StampFontData(FONT)


class _CachedCIDFontType2(CIDFontType2):
    font_file: bytes = b""

    def set_font_file(self, writer):
        stream = generic.StreamObject(
            {generic.pdf_name("/Filter"): generic.pdf_name("/FlateDecode")},
            encoded_data=self.font_file,
        )
        ref = writer.add_object(stream)
        self._font_descriptor[generic.pdf_name("/FontFile2")] = ref
        return ref


class StampFont(GlyphAccumulator):
    """pyHanko's GlyphAccumulator on the shared, pre-parsed stamp font."""

    def __init__(self, writer, font_size, obj_stream=None):
        font = _stamp_font_data()
        FontEngine.__init__(
            self, writer, font.ps_name, embedded_subset=True, obj_stream=obj_stream,
            font_size=font_size,
        )  # fmt: skip
        self.font = font
        self.hb_font = font.hb_font
        self.tt = font.tt
        self._font_ref = writer.allocate_placeholder()
        self.cff_charset = None
        self.use_raw_gids = True
        self.cidfont_obj = _CachedCIDFontType2(font.tt, font.ps_name, self.subset_prefix)
        self.features = None
        self.units_per_em = font.units_per_em
        self._glyphs = {}
        self._glyph_set = font.glyph_set
        self._cid_to_unicode = {}
        self.ot_language_tag = self.ot_script_tag = None
        self.writing_direction = None
        self.bcp47_lang_code = None
        self._subset_created = self._write_prepared = False

    @property
    def _reverse_cmap(self):
        return self.font.reverse_cmap

    def shape(self, txt: str, with_actual_text: bool = True):
        with self.font.lock:  # fontTools expands glyphs lazily: not thread-safe
            return super().shape(txt, with_actual_text)

    def prepare_write(self):
        if not self._write_prepared:
            with self.font.lock:
                gids = frozenset(self._glyphs) | self.font.base_gids
                self.cidfont_obj.font_file = self.font.subset(gids)
            self._subset_created = True  # the subset comes from the cache
        super().prepare_write()


class StampFontFactory(FontEngineFactory):
    def __init__(self, font_size: int):
        self.font_size = font_size

    def create_font_engine(self, writer, obj_stream=None) -> StampFont:
        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return StampFont(writer, self.font_size, obj_stream=obj_stream)


# --- Signing ---


def _stamp_style(lines: Sequence[str], font_size: int) -> TextStampStyle:
    font = StampFontFactory(font_size)
    text = "\n".join(line.replace("%", "%%") for line in lines)
    return TextStampStyle(
        stamp_text=text,
        text_box_style=TextBoxStyle(font=font, font_size=font_size, leading=font_size + 2),
        border_width=1,
        background=None,
    )


class _PdfPageContent(PdfContent):
    """The first page of a PDF given as bytes, as a stamp's background (pyHanko's own
    ImportedPdfPage reads a file)."""

    def __init__(self, pdf: bytes):
        self.pdf = pdf
        super().__init__()

    def render(self) -> bytes:
        xobj = self._ensure_writer.import_page_as_xobject(PdfFileReader(BytesIO(self.pdf)), 0)
        self.resources.xobject["/BenhAnAppearance"] = xobj
        x1, y1, x2, y2 = xobj.get_object()["/BBox"]
        self.box = BoxConstraints(width=abs(x1 - x2), height=abs(y1 - y2))
        return b"/BenhAnAppearance Do"


def _reserve(signer: signers.Signer, timestamper, embed: bool) -> int:
    """Bytes for the CMS blob, so pyHanko skips its sizing pass (one signature, not two)."""
    cert = signer.signing_cert
    size = 4096 + 2 * sum(len(c.dump()) for c in (cert, *signer.cert_registry))
    if cert.public_key.algorithm == "rsa":
        size += 2 * (cert.public_key.bit_size // 8)
    if timestamper is not None:
        size += 6144
        if not isinstance(timestamper, tsa.FacilityTimeStamper):
            size += 8192  # a foreign TSA's chain is unknown
    return size


def sign_pdf(
    pdf: bytes,
    *,
    signer: signers.Signer,
    field_name: str,
    page: int = 0,
    box: tuple[float, float, float, float] | None = None,
    stamp_lines: Sequence[str] = (),
    reason: str = "",
    location: str = "",
    timestamper=None,
    seal: bool = False,
    validation_context: ValidationContext | None = None,
    embed_validation_info: bool = True,
    font_size: int = STAMP_FONT_SIZE,
    appearance: bytes | None = None,
) -> bytes:
    """Sign `pdf` in a new field and return the PDF with the signature appended.

    box: (x1, y1, x2, y2) in PDF points on `page` (0-based) for a visible stamp holding
    stamp_lines; None for an invisible signature. seal=True makes it the facility seal:
    an approval signature locking every field with "no changes" allowed after it.
    appearance: a one-page PDF the size of `box` drawn as the stamp instead of text (the
    patient's drawn signature, signed with the witness's key).
    Raises DocumentSealed when the PDF is already sealed, SignatureFailed when pyHanko
    refuses (a revoked or untrusted certificate, …).
    """
    # One reader for the lock check and for pyHanko: the signature objects (with their
    # large /Contents) are parsed once, not twice.
    writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    lock = _lock_reason(writer.prev)
    if lock is not None:
        raise DocumentSealed(f"The document is sealed ({lock}); it cannot be signed again.")
    if validation_context is None and embed_validation_info and isinstance(signer, LoadedKeySigner):
        validation_context = validation_context_for(_crypto_cert(signer.signing_cert))
    embed = embed_validation_info and validation_context is not None
    spec = fields.SigFieldSpec(
        sig_field_name=field_name,
        on_page=page,
        box=tuple(box) if box else None,
        field_mdp_spec=fields.FieldMDPSpec(fields.FieldMDPAction.ALL) if seal else None,
        doc_mdp_update_value=fields.MDPPerm.NO_CHANGES if seal else None,
    )
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason or None,
        location=location or None,
        embed_validation_info=embed,
        validation_context=validation_context if embed else None,
        # The seal ends with a document timestamp (PAdES B-LTA): proof that every
        # signature and its validation data existed then, whatever is revoked later.
        use_pades_lta=seal and embed and timestamper is not None,
    )
    if box and appearance:
        style = StaticStampStyle(background=_PdfPageContent(appearance), border_width=0)
    else:
        style = _stamp_style(stamp_lines, font_size) if box and stamp_lines else None
    pdf_signer = signers.PdfSigner(
        meta, signer=signer, timestamper=timestamper, stamp_style=style, new_field_spec=spec
    )
    reserved = _reserve(signer, timestamper, embed)
    for _attempt in range(2):
        if _attempt:
            writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
        out = BytesIO()
        try:
            pdf_signer.sign_pdf(writer, bytes_reserved=reserved, output=out)
        except PyHankoSigningError as exc:
            if "reserved" in str(exc).lower() and _attempt == 0:
                reserved *= 2
                continue
            raise SignatureFailed(str(exc)) from exc
        return out.getvalue()
    raise SignatureFailed("signature does not fit")  # pragma: no cover


def _crypto_cert(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())
