"""unsign-worker: cancel Alipay customer agreements (customer_unsign) reliably, at campaign scale."""

__version__ = "0.1.0"
