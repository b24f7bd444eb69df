"""``fingerplat serve``: the runtime, its workers, sweepers and bot leadership.

The parts they run (engines, service) are built by fingerplat/bootstrap.py.
"""
