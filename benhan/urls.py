from django.contrib import admin
from django.urls import include, path
from django.views.i18n import set_language

from benhan.records import views as records_views

admin.site.site_header = "Bệnh Án"
admin.site.site_title = "Bệnh Án"

urlpatterns = [
    path("", include("benhan.core.urls")),
    path("accounts/", include("benhan.accounts.urls")),
    path("patients/", include("benhan.patients.urls")),
    path("encounters/", include("benhan.encounters.urls")),
    path("audit/", include("benhan.audit.urls")),
    path("pki/", include("benhan.signing.urls")),
    path("records/", include("benhan.records.urls")),
    path("lab/", include("benhan.lab.urls")),
    path("v/<str:code>", records_views.lookup, name="lookup"),
    # Printed as QR codes: the signed paper's upload page, and the patient's own copy.
    path("p/<str:token>", records_views.paper_upload, name="paper"),
    path("c/<str:token>", records_views.patient_copy, name="patient_copy"),
    path("i18n/setlang/", set_language, name="set_language"),
    path("admin/", admin.site.urls),
]

handler403 = "benhan.core.views.forbidden"
