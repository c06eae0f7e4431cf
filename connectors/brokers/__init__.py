"""Brokers behind one interface (:class:`~connectors.brokers.base.Broker`): the paper broker
(:mod:`~connectors.brokers.paper`) and the ccxt adapter (:mod:`~connectors.brokers.ccxt_broker`)."""
