"""Operations: status, the metrics exporter, dead-letter operations, the operators' journal,
Flower's guards."""
