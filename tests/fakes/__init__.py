"""Stand-ins for the AWS calls moto does not answer, and helpers that drive the app.

* :mod:`tests.fakes.base`: :class:`ModelCheckedFake`, which checks every
  request and answer against botocore's model of the real service;
* :mod:`tests.fakes.video_search`: StartFaceSearch / GetFaceSearch;
* :mod:`tests.fakes.face_collection`: DetectFaces, IndexFaces,
  SearchFacesByImage, DeleteFaces on photos a test describes;
* :mod:`tests.fakes.drivers`: uploads, Lambda events and session runs.

The fixtures that put these fakes into a test's services are in tests/conftest.py.
"""
