"""Experiments that measure the paper's argument and why it works.

Degradation, Table 6, shortcuts and identity plan training runs, train them with
``resnetlab.train.fit`` (skipping the finished ones), and write a table, figures and a
self-contained HTML report. The analyses (signal and shattered at initialisation, lesion and
landscape on trained nets) measure nets in kept parts (``parts``) and write the same files, with
findings made from their numbers (``findings``).
"""
