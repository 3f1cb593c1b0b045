from django.urls import path

from benhan.encounters import views

app_name = "encounters"
urlpatterns = [
    path("new/<int:patient_id>/", views.open_encounter, name="open"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/transfer/", views.transfer, name="transfer"),
    path("<int:pk>/discharge/", views.discharge, name="discharge"),
    path("<int:pk>/diagnoses/", views.diagnoses, name="diagnoses"),
    path("<int:pk>/admit/", views.admit_from, name="admit_from"),
    path("icd10/", views.icd10_search, name="icd10"),
]
