"""The world's book, its pure core: one account's net targets from its strategies' target
weights (:mod:`~qmtl.book.netting`), the orders that bring the account there
(:mod:`~qmtl.book.sizing`), their state machine and client ids (:mod:`~qmtl.book.orders`),
fills allocated back to strategies (:mod:`~qmtl.book.attribution`), the pre-trade risk
engine (:mod:`~qmtl.book.risk`), the ledger against the broker
(:mod:`~qmtl.book.reconcile`) and the ledger itself as a fold of its events
(:mod:`~qmtl.book.ledger`). No I/O: the shell (:mod:`qmtl.book_run`) reads targets, stores
events and talks to the broker.

>>> from qmtl.book.netting import StrategyTarget, net_targets
>>> net = net_targets([StrategyTarget("a", "BTC", 0.5), StrategyTarget("b", "BTC", -0.3)],
...                   {"a": 0.5, "b": 0.5}, equity=1000.0, prices={"BTC": 10.0})
>>> net["BTC"].qty
10.0
"""
