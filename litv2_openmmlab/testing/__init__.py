"""What the tests and the benchmarks share on the OpenMMLab side:
``reference_backbone.py``, the reference algorithm of
:mod:`litv2.testing.reference` as an mmdet / mmseg backbone. Importing this
package imports none of its modules (importing ``reference_backbone``
registers ``ReferenceLITv2Backbone``)."""
