import os

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from .models import Job, Order

RECENT = 20


def served_by() -> str:
    """Which bigtop process answered: visible on the page during a reload."""
    watcher, wid = os.environ.get("BIGTOP_WATCHER"), os.environ.get("BIGTOP_WID")
    return f"{watcher}.{wid} (pid {os.getpid()})" if watcher else f"pid {os.getpid()}"


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    orders = Order.objects.all()[:RECENT]
    queued = Job.objects.filter(status=Job.QUEUED).count()
    return render(request, "orders/home.html",
                  {"orders": orders, "queued": queued, "served_by": served_by()})


@require_http_methods(["GET", "POST"])
def new_order(request: HttpRequest) -> HttpResponse:
    """Create an order and queue the job that fulfils it.

    POST (the form on the home page, CSRF-checked) comes back to the list;
    GET ``/orders/new?item=teapot`` (handy with curl) goes to the order."""
    item = (request.POST if request.method == "POST" else request.GET).get("item", "").strip()
    if not item or len(item) > 100:
        return HttpResponseBadRequest("item: 1 to 100 characters\n")
    with transaction.atomic():
        order = Order.objects.create(item=item)
        Job.objects.create(order=order)
    response = redirect("home") if request.method == "POST" else redirect("order", pk=order.pk)
    response.status_code = 303  # see other: fetch the target with GET
    return response


@require_GET
def order_detail(request: HttpRequest, pk: int) -> JsonResponse:
    order = get_object_or_404(Order, pk=pk)
    return JsonResponse({
        "id": order.pk,
        "item": order.item,
        "status": order.status,
        "created": order.created.isoformat(),
        "fulfilled_at": order.fulfilled_at.isoformat() if order.fulfilled_at else None,
        "served_by": served_by(),
    })


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")
