"""An order, and the background job that fulfils it.

The Job table is the queue: the web processes insert a queued job with each
order, the worker (worker.py) takes queued jobs oldest first and marks them
done, the way Celery with a database broker would.
"""

from django.db import models


class Order(models.Model):
    PENDING = "pending"
    FULFILLED = "fulfilled"
    STATUSES = [(PENDING, "pending"), (FULFILLED, "fulfilled")]

    item = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    created = models.DateTimeField(auto_now_add=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"order {self.pk}: {self.item} ({self.status})"


class Job(models.Model):
    QUEUED = "queued"
    DONE = "done"
    STATUSES = [(QUEUED, "queued"), (DONE, "done")]

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=16, choices=STATUSES, default=QUEUED, db_index=True)
    created = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)
    worker_pid = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"job {self.pk} for order {self.order_id} ({self.status})"
