"""Public PKI endpoints: root certificates, CRLs, the timestamp service.

No login: they hold no patient data, and verifiers outside the clinic need them.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from benhan.accounts.models import Facility
from benhan.signing import pki, tsa
from benhan.signing.models import CertificateAuthority

# A TimeStampReq is a few hundred bytes.
MAX_TSA_REQUEST = 16 * 1024


@require_GET
@cache_control(public=True, max_age=3600)
def root_pem(request, code: str | None = None):
    roots = CertificateAuthority.objects.filter(kind="root").select_related("facility")
    if code is not None:
        roots = roots.filter(facility__code=code)
    pems = [ca.cert_pem for ca in roots.order_by("pk")]
    if not pems:
        raise Http404("no root certificate")
    response = HttpResponse("".join(pems), content_type="application/x-pem-file")
    name = f"root-{code}.pem" if code else "root.pem"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
@cache_control(public=True, max_age=300)
def crl(request, ca_id: int):
    ca = get_object_or_404(CertificateAuthority, pk=ca_id)
    return HttpResponse(pki.crl_der(ca), content_type="application/pkix-crl")


@csrf_exempt  # machine-to-machine, carries no session; answers are signed data only
def timestamp(request, code: str | None = None):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if request.content_type != "application/timestamp-query":
        return HttpResponse("expected application/timestamp-query", status=415)
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > MAX_TSA_REQUEST:
        return HttpResponse("request too large", status=413)
    facility = _tsa_facility(code)
    body = request.read(MAX_TSA_REQUEST + 1)
    if len(body) > MAX_TSA_REQUEST:
        return HttpResponse("request too large", status=413)
    return HttpResponse(tsa.answer(body, facility), content_type="application/timestamp-reply")


def _tsa_facility(code: str | None) -> Facility:
    qs = Facility.objects.filter(credentials__kind="tsa").distinct().order_by("pk")
    if code is not None:
        qs = qs.filter(code=code)
    facility = qs.first()
    if facility is None:
        raise Http404("no timestamp service")
    return facility
