"""Speed and memory benchmarks for ``labkit analyze`` (issue 8).

``python -m benchmarks.generate`` writes a deterministic mixed capture and its ground truth;
``python -m benchmarks.run`` times labkit against tcpdump's BPF scan, tshark and Scapy on it.
"""
