"""benchlib: the pieces of bench/compare (servers, fio, /proc accounting, isolation, report)."""
