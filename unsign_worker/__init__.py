"""unsign-worker: cancel Alipay customer agreements (customer_unsign) reliably, at scale."""

__version__ = "0.1.0"
