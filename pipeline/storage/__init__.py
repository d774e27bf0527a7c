"""Every file the pipeline reads or writes outside Spark's own DataFrame I/O, by URI, on pyarrow.fs: usable on the
driver, a Spark Connect client and inside training ranks alike (no JVM)."""
