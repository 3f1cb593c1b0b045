from django.urls import path

from benhan.records import views

app_name = "records"
urlpatterns = [
    path("encounter/<int:encounter_pk>/", views.encounter_record, name="encounter"),
    path("documents/<int:pk>/", views.document, name="document"),
    path("documents/<int:pk>/draft/", views.save_draft, name="save_draft"),
    path("documents/<int:pk>/complete/", views.complete, name="complete"),
    path("documents/<int:pk>/sign/", views.sign, name="sign"),
    path("documents/<int:pk>/seal/", views.seal, name="seal"),
    path("documents/<int:pk>/amend/", views.amend, name="amend"),
    path("documents/<int:pk>/v<int:version>.pdf", views.pdf, name="pdf"),
    path("documents/<int:pk>/v<int:version>/print.pdf", views.print_copy, name="print"),
    path("<int:pk>/close/", views.close_record, name="close"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("encounter/<int:encounter_pk>/scans/new/", views.file_scan, name="file_scan"),
    path("scans/<int:pk>.pdf", views.scan_pdf, name="scan_pdf"),
    path("mine/", views.my_work, name="my_work"),
    path("documents/<int:pk>/patient-sign/", views.patient_sign, name="patient_sign"),
    path("documents/<int:pk>/patient-signed/", views.patient_signed, name="patient_signed"),
    path(
        "documents/<int:pk>/v<int:version>/page-<int:page>.webp",
        views.page_image,
        name="page_image",
    ),
]
