"""Multi-label procedures: online label partitioning for streams and clustering into
pseudo-classes. Import each from its module; multi-label losses live in :mod:`paperzoo.losses`."""
