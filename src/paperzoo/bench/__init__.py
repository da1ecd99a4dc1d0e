"""Speed and memory benchmarks behind ``paperzoo bench``."""
