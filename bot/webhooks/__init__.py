"""Store platforms' webhooks: routes on the shop API's server, the inbox worker, the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from pydantic import SecretStr

from bot.settings import Settings
from bot.webhooks.routes import WebhookSecrets, create_webhooks_app
from bot.webhooks.worker import InboxWorker
from scenarios.clock import Clock
from scenarios.orders import OrderDesk
from scenarios.rules import Rules
from scenarios.webhooks.platforms import shop_of
from scenarios.webhooks.sync import StoreSync
from storage.database import Database
from storage.inbox import SqlInbox, SqlStoreOrderLinks
from storage.orders import SqlOrders

PREFIX = "/webhooks"


def secrets_of(settings: Settings) -> WebhookSecrets:
    """Each platform's secret from the settings; an empty one counts as unset."""

    def value(secret: SecretStr | None) -> str | None:
        return (secret.get_secret_value() or None) if secret is not None else None

    return WebhookSecrets(
        shopify=value(settings.shopify_webhook_secret),
        woocommerce=value(settings.woocommerce_webhook_secret),
        tilda=value(settings.tilda_webhook_key),
    )


@dataclass
class Webhooks:
    inbox: SqlInbox
    worker: InboxWorker
    secrets: WebhookSecrets

    @property
    def on(self) -> bool:
        """Whether any platform's secret is set (the worker runs, the routes are served)."""
        return self.secrets.any

    def mount(self, app: web.Application, *, clock: Clock) -> None:
        """Serve /webhooks/... from ``app`` (the shop API's server)."""
        app.add_subapp(
            PREFIX,
            create_webhooks_app(
                inbox=self.inbox, secrets=self.secrets, clock=clock, wake=self.worker.wake
            ),
        )


def create_webhooks(
    *,
    db: Database,
    inbox: SqlInbox,
    desk: OrderDesk,
    orders: SqlOrders,
    rules: Rules,
    clock: Clock,
    secrets: WebhookSecrets,
) -> Webhooks:
    """The inbox, and a worker that feeds ``desk`` (the API's, with the same followers)."""
    worker = InboxWorker(
        db=db,
        inbox=inbox,
        sync=StoreSync(desk=desk, orders=orders, links=SqlStoreOrderLinks(db), clock=clock),
        shop=shop_of(rules),
        clock=clock,
    )
    return Webhooks(inbox=inbox, worker=worker, secrets=secrets)
