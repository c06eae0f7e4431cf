"""The systems ``bench/peers.py`` races qmtl against, one module each: the numpy floor,
vectorbt, backtesting.py, backtrader and a naive per-bar Bytewax port."""
