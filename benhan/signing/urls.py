from django.urls import path

from benhan.signing import views

app_name = "pki"

urlpatterns = [
    path("root.pem", views.root_pem, name="root"),
    path("root-<str:code>.pem", views.root_pem, name="root_facility"),
    path("crl/<int:ca_id>.crl", views.crl, name="crl"),
    path("tsa", views.timestamp, name="tsa"),
    path("tsa/<str:code>", views.timestamp, name="tsa_facility"),
]
