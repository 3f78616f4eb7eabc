from django.apps import AppConfig
from django.db.backends.signals import connection_created


def use_wal(sender, connection, **kwargs) -> None:
    """SQLite's write-ahead log lets the web processes read while the worker
    writes (the default journal blocks readers during a write)."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        connection_created.connect(use_wal, dispatch_uid="orders.use_wal")
