from django.urls import path

from benhan.lab import views

app_name = "lab"
urlpatterns = [
    path("", views.worklist, name="worklist"),
    path("tests/", views.test_search, name="tests"),
    path("encounter/<int:pk>/", views.encounter, name="encounter"),
    path("encounter/<int:encounter_pk>/order/", views.order, name="new_order"),
    path("orders/<int:pk>/", views.order_detail, name="order"),
    path("orders/<int:pk>/collect/", views.collect, name="collect"),
    path("orders/<int:pk>/labels.pdf", views.labels_pdf, name="labels_pdf"),
    path("orders/<int:pk>/labels.zpl", views.labels_zpl, name="labels_zpl"),
    path("specimens/<int:pk>/", views.specimen, name="specimen"),
    path("specimens/<int:pk>/manual/", views.manual, name="manual"),
    path("specimens/<int:pk>/imaging/", views.imaging, name="imaging"),
    path("specimens/<int:pk>/images/<int:n>", views.image, name="image"),
    path("specimens/<int:pk>/sign/", views.sign, name="sign"),
    path("specimens/<int:pk>/verify/", views.verify, name="verify"),
    path("results/<int:pk>/repeat/", views.repeat, name="repeat"),
    path("results/<int:pk>/correct/", views.correct, name="correct"),
    path("unmatched/", views.unmatched, name="unmatched"),
    path("unmatched/<int:pk>/link/", views.link, name="link"),
    path("analyzers/", views.analyzer_log, name="analyzers"),
    path("analyzers/messages/<int:pk>/", views.message, name="message"),
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/count/", views.inbox_count, name="inbox_count"),
    path("inbox/<int:pk>/", views.inbox_open, name="inbox_open"),
]
