from django.urls import path
from orders import views

urlpatterns = [
    path("", views.home, name="home"),
    path("orders/new", views.new_order, name="new-order"),
    path("orders/<int:pk>", views.order_detail, name="order"),
    path("healthz", views.healthz, name="healthz"),
]
