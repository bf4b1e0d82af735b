"""Benchmarks: training throughput, inference latency, memory, and the machine's peak FLOP rate."""
