"""Each customer's counted orders in one row, kept by triggers on orders, for /stats.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from storage.types import BigIntId, UtcDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# As storage.segments.VOID_STATUSES: these orders count for nobody's history.
_VOID = "('cancelled', 'refunded')"

# The row is the aggregate of the customer's counted orders, whatever changed them. It is
# worked out again from the orders (a handful per customer, read from ix_orders_customer_history)
# whenever an order comes, goes, moves to another customer, or changes what it counts for;
# a status change between counted statuses (paid, delivered) changes nothing and costs nothing.
_SQLITE_RECOUNT = f"""
    DELETE FROM customer_order_totals WHERE customer_id IN ({{ids}});
    INSERT INTO customer_order_totals (customer_id, orders, first_at, last_at, spend)
    SELECT customer_id, COUNT(*), MIN(ordered_at), MAX(ordered_at), SUM(total) FROM orders
    WHERE customer_id IN ({{ids}}) AND status NOT IN {_VOID}
    GROUP BY customer_id;
"""

_SQLITE_TRIGGERS = (
    # A new counted order adds to the row (SQLite has one writer: no one else is adding).
    f"""
    CREATE TRIGGER customer_order_totals_on_insert AFTER INSERT ON orders
    WHEN NEW.customer_id IS NOT NULL AND NEW.status NOT IN {_VOID}
    BEGIN
        INSERT INTO customer_order_totals (customer_id, orders, first_at, last_at, spend)
        VALUES (NEW.customer_id, 1, NEW.ordered_at, NEW.ordered_at, NEW.total)
        ON CONFLICT (customer_id) DO UPDATE SET
            orders = orders + 1,
            first_at = MIN(first_at, excluded.first_at),
            last_at = MAX(last_at, excluded.last_at),
            spend = spend + excluded.spend;
    END
    """,
    f"""
    CREATE TRIGGER customer_order_totals_on_update
    AFTER UPDATE OF customer_id, status, total, ordered_at ON orders
    WHEN OLD.customer_id IS NOT NEW.customer_id
        OR OLD.total IS NOT NEW.total
        OR OLD.ordered_at IS NOT NEW.ordered_at
        OR (OLD.status IN {_VOID}) IS NOT (NEW.status IN {_VOID})
    BEGIN
        {_SQLITE_RECOUNT.format(ids="OLD.customer_id, NEW.customer_id")}
    END
    """,
    f"""
    CREATE TRIGGER customer_order_totals_on_delete AFTER DELETE ON orders
    WHEN OLD.customer_id IS NOT NULL
    BEGIN
        {_SQLITE_RECOUNT.format(ids="OLD.customer_id")}
    END
    """,
)

# PostgreSQL runs writers side by side: a recount must see every order committed before it, so
# it first locks the customer's row (NO KEY UPDATE: an order's foreign key check, KEY SHARE,
# does not wait on it) and then reads, in a statement of its own, with a snapshot taken after
# the lock was granted (READ COMMITTED, as the bot runs). Row locks live on the rows, not in the
# shared lock table, so an import touching thousands of customers in one transaction is fine.
_POSTGRES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION customer_order_totals_recount() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched bigint[];
    one bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        touched := ARRAY[NEW.customer_id];
    ELSIF TG_OP = 'DELETE' THEN
        touched := ARRAY[OLD.customer_id];
    ELSE
        -- Each customer once, the lower id first: two recounts of the same two customers
        -- lock them in one order.
        SELECT COALESCE(array_agg(DISTINCT id ORDER BY id), '{{}}') INTO touched
        FROM unnest(ARRAY[OLD.customer_id, NEW.customer_id]) AS id WHERE id IS NOT NULL;
    END IF;
    FOREACH one IN ARRAY touched LOOP
        PERFORM 1 FROM customers WHERE id = one FOR NO KEY UPDATE;
        INSERT INTO customer_order_totals (customer_id, orders, first_at, last_at, spend)
        SELECT one, COUNT(*), MIN(ordered_at), MAX(ordered_at), SUM(total) FROM orders
        WHERE customer_id = one AND status NOT IN {_VOID}
        HAVING COUNT(*) > 0
        ON CONFLICT (customer_id) DO UPDATE SET
            orders = EXCLUDED.orders,
            first_at = EXCLUDED.first_at,
            last_at = EXCLUDED.last_at,
            spend = EXCLUDED.spend;
        IF NOT FOUND THEN
            DELETE FROM customer_order_totals WHERE customer_id = one;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$
"""

_POSTGRES_TRIGGERS = (
    f"""
    CREATE TRIGGER customer_order_totals_on_insert AFTER INSERT ON orders FOR EACH ROW
    WHEN (NEW.customer_id IS NOT NULL AND NEW.status NOT IN {_VOID})
    EXECUTE FUNCTION customer_order_totals_recount()
    """,
    f"""
    CREATE TRIGGER customer_order_totals_on_update
    AFTER UPDATE OF customer_id, status, total, ordered_at ON orders FOR EACH ROW
    WHEN (OLD.customer_id IS DISTINCT FROM NEW.customer_id
        OR OLD.total IS DISTINCT FROM NEW.total
        OR OLD.ordered_at IS DISTINCT FROM NEW.ordered_at
        OR (OLD.status IN {_VOID}) IS DISTINCT FROM (NEW.status IN {_VOID}))
    EXECUTE FUNCTION customer_order_totals_recount()
    """,
    """
    CREATE TRIGGER customer_order_totals_on_delete AFTER DELETE ON orders FOR EACH ROW
    WHEN (OLD.customer_id IS NOT NULL)
    EXECUTE FUNCTION customer_order_totals_recount()
    """,
)

_TRIGGER_NAMES = (
    "customer_order_totals_on_insert",
    "customer_order_totals_on_update",
    "customer_order_totals_on_delete",
)


def upgrade() -> None:
    op.create_table(
        "customer_order_totals",
        sa.Column("customer_id", BigIntId, autoincrement=False, nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("first_at", UtcDateTime, nullable=False),
        sa.Column("last_at", UtcDateTime, nullable=False),
        sa.Column("spend", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_order_totals")),
    )
    # The shop's history so far, then the triggers keep it (the migration holds the writer on
    # SQLite and runs in one transaction on PostgreSQL: no order slips between the two).
    op.execute(
        "INSERT INTO customer_order_totals (customer_id, orders, first_at, last_at, spend) "
        "SELECT customer_id, COUNT(*), MIN(ordered_at), MAX(ordered_at), SUM(total) FROM orders "
        f"WHERE customer_id IS NOT NULL AND status NOT IN {_VOID} GROUP BY customer_id"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_FUNCTION)
        for trigger in _POSTGRES_TRIGGERS:
            op.execute(trigger)
    else:
        # NB: a later migration that rebuilds orders on SQLite (batch mode copies the table)
        # drops these triggers with the old table and must create them again.
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in _TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON orders" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS customer_order_totals_recount()")
    op.drop_table("customer_order_totals")
