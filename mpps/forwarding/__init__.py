"""Forwarding to the PACS: MPPS relay, the storage gateway, storage commitment, study availability.

A Django app of its own (label ``forwarding``) beside ``mpps``: it reacts to ``mpps.signals`` and
delivers through the durable outbound queue (``ris.outbound_queue``) with the job kinds of
``mpps.forwarding.sender``.
"""
