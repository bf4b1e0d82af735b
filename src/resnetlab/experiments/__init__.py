"""Experiments that measure the paper's argument: degradation, Table 6, shortcuts, identity.

Each experiment plans its training runs, trains them with ``resnetlab.train.fit`` (skipping the
finished ones), and writes a table, figures and a self-contained HTML report.
"""
