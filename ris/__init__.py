"""ris: the Order Filler / Department System Scheduler of IHE Scheduled Workflow."""
