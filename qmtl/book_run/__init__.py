"""The world's book, its shell: the durable ledger (:mod:`~qmtl.book_run.store`), the book
service that reads targets, runs the core's decisions through risk to a broker and
reconciles (:mod:`~qmtl.book_run.service`), the targets topic
(:mod:`~qmtl.book_run.targets`) and the world's activation (:mod:`~qmtl.book_run.world`)."""
