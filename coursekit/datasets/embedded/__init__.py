"""``embedded``: the course's default benchmark, built offline in seconds.

Why a synthetic benchmark?
--------------------------
The real instance-retrieval benchmarks (revisited Oxford and Paris, Holidays,
UKBench...) have to be downloaded. The course must also run without a
network, in CI and on a laptop, so its default dataset is *built* from the
real photographs that the installed packages already ship:

* object photos: ``astronaut``, ``chelsea`` (a cat), ``coffee`` from
  scikit-image, ``china`` and ``flower`` from scikit-learn and
  ``grace_hopper`` from matplotlib give the **query objects**;
* ``motorcycle_left``, ``rocket``, ``ihc`` and ``hubble_deep_field`` from
  scikit-image give the **training objects** (other photos, so that nothing
  learned on the training split has seen a test object);
* scikit-image's grey-level photos and textures (``camera``, ``coins``,
  ``moon``, ``brick``, ``grass``, ``gravel``, ``page``, ``text``, ``cell``,
  ``clock_motion``; tinted with random two-colour ramps) and the colour
  ``retina`` photo give the **backgrounds**, clutter and occluders. No
  background photo is ever the source of an object, so an object never
  appears by accident in another image's background.

What an "object" is
-------------------
Each object photo is cut into a grid of cells of about 120 px (a 3 px
margin between neighbours: different objects never overlap in their
source). A cell with too little texture (sky, out-of-focus background) is
dropped. The object is the cell's pixels under a mask: the whole rectangle,
an ellipse or a random polygon. A few textured cells that would be
near-duplicates of others (plain wood grain, a second piece of star-spangled
flag, blue backdrop) are kept out of the queries: they are pasted as
**clutter** into the test images (distractors above all), where they act as
hard negatives. The
catalogue of objects is the same for every seed (:func:`object_catalogue`);
the seed changes every rendering.

How an image is rendered
------------------------
Every image is 480x360 (landscape) or 360x480 (portrait, one in four). Its
background is its own **dead-leaves** scene
(:func:`~coursekit.datasets.embedded.render._dead_leaves`): five layers
(tinted crops of the background photos at random scales, or fractal noise)
cut by occluding leaves of every size, with the ``r**-3`` size law that
makes the model scale invariant as natural images are; the record names the
photo that shows most (``background["source"]``). Clutter is pasted on it (0 or 1 item
behind an object; 1 item of an object's size plus 0-2 small ones in a
distractor), then the object itself through a homography that models a
pinhole camera looking at a planar object:

* ``size``: longer side of the object in pixels before the tilt
  (the *scale*),
* ``tilt`` (degrees) about an in-plane axis at ``tilt_axis`` degrees, the
  camera ``distance`` object sizes away (the *viewpoint change*; a closer
  camera means a stronger perspective),
* ``rotation``: in-plane rotation in degrees,
* ``center``: where it lands; it may stick out of the frame (truncation).

Then an occluder (a textured random polygon) may cover part of it, and the
whole image goes through a "camera": gain, gamma and per-channel gains
(illumination and colour shift), Gaussian blur, Gaussian noise and JPEG
compression at a random quality. Every parameter is stored per image in
``groundtruth.json`` (``db_records``, ``query_records``, ``train_records``),
with ``homography``: the 3x3 matrix from the object's pixels (its box in
the source photo, origin at the box's top-left corner) to the image's, and
``bbx``: the box of the projected object in the image.

Ground truth: the revisited protocol
------------------------------------
The dataset follows revisited Oxford and Paris (Radenovic et al., CVPR
2018): for every query, the database renderings of its object are *easy*,
*hard* or *junk*, from measured rendering parameters:

* ``visible`` = object pixels visible in the image (not occluded, inside
  the frame) / pixels of the whole projected object;
* ``area`` = visible object pixels / image pixels;
* ``scale`` = sqrt(projected object area / the query's projected object area).

*junk* when ``visible < 0.30`` or ``area < 0.012`` (the object is barely
there: it is neither right nor wrong to retrieve it). Otherwise *hard* when
any of ``visible < 0.65``, ``tilt > 45``, ``|rotation| > 60``, ``scale``
outside ``[1/2, 2]``, ``area < 0.04`` or ``blur sigma > 2``. Otherwise
*easy*. Every query has at least one easy positive. The evaluation modes
are then Easy (positives easy, hard ignored), Medium (easy and hard) and
Hard (positives hard, easy ignored).

Queries are separate renderings (mild viewpoint, no occlusion, fully in the
frame) with a box ``bbx = x1, y1, x2, y2`` around the projected object; they
are not in the database. Distractors are background images with clutter but
no query object (``db_labels == -1``). The training split is the training
objects rendered the same way (no junk), with their object ids as labels;
its ids never occur in the database.

Difficulty knobs
----------------
``_TARGETS`` (the share of easy / hard / junk renderings), the sampling
ranges in ``_draw_geometry`` (hard renderings get one or two strong factors
among tilt 50-68 degrees, rotation 70-180 degrees, zoom out 2.1-3.2x or in
2.1-2.8x, 40-62 % occlusion and truncation) and ``_draw_camera``, and the
thresholds ``THRESHOLDS``. With seed 0 (68 queries, 712 database images),
the Easy / Medium / Hard mAPs of chance, a colour histogram and an
off-the-shelf CNN (GeM) are measured in the course report: chance near
zero, the CNN far above the histogram, Hard the hardest for both.

Versions
--------
Version 2 is the default (``embedded``). Version 1 (loaded as
``embedded-v1``, for the numbers of earlier runs) cut every background from
one of only 11 photos, and an off-the-shelf CNN's nearest neighbours of an
image were then, half the time, images cut from the same photo, whatever
object they showed (:mod:`coursekit.datasets.embedded.audit` measures it;
the course report prints it). Version 2 changed two things and kept the
rest (objects, clutter, occluders, camera, protocol, thresholds):

* every background is its own dead-leaves scene (above), so that no two
  images share one;
* each query object gets 8-10 database **views along 1-3 walks**
  (:func:`~coursekit.datasets.embedded.plan.walk_poses`) from the query's
  pose in tilt, rotation, scale and light: neighbouring views differ a
  little, the ends of a walk a lot, as a landmark's photos do (the chains
  that query expansion and diffusion follow to the distant views);
  occlusion, truncation and junk are drawn per image; 90 distractors
  (about as many images in all as version 1, so that a first run costs
  what it did).

Layout on disk (``cache_root() / "embedded-v{VERSION}-seed{seed}"``)::

    db/000000.jpg ...        database images (shuffled order)
    queries/000000.jpg ...   query images
    train/000000.jpg ...     training images
    groundtruth.json         everything :func:`load_embedded` needs, plus the
                             generator version, the seed, the object
                             catalogue and every image's rendering record

The same seed gives byte-identical files with the same versions of NumPy,
SciPy, OpenCV and Pillow (JPEG encoding and decoding, warps and blurs are
library code).
"""

from .build import VERSION, VERSIONS, build_embedded
from .catalogue import ObjectInfo, object_catalogue
from .load import default_root, load_embedded
from .render import LANDSCAPE, PORTRAIT, THRESHOLDS

# ObjectInfo, LANDSCAPE and PORTRAIT stay importable from here, as before the split.

__all__ = ["VERSION", "VERSIONS", "THRESHOLDS", "build_embedded", "load_embedded", "object_catalogue", "default_root"]
