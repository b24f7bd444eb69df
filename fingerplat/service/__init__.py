"""Use cases: the only place that decides who may change what, and audits it."""

from fingerplat.service.core import FingerplatService

__all__ = ["FingerplatService"]
