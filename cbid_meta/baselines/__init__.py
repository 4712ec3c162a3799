"""Peer methods written from their papers and public code, run by ``cbid bench``.

* :func:`selfdeblur` — SelfDeblur (Ren et al., CVPR 2020): a Deep-Image-Prior image network
  and a fully connected kernel network, both from fixed noise (:mod:`.selfdeblur`).
"""
from .selfdeblur import SelfDeblurSettings, selfdeblur

__all__ = ["SelfDeblurSettings", "selfdeblur"]
