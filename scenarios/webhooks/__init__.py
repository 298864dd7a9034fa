"""Store platforms' webhooks (Shopify, WooCommerce, Tilda): what a delivery means, per platform."""
