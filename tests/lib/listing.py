"""Fixed S3 listings for unit tests: a bucket that lists a dict in pages, and distinct MD5s."""

from __future__ import annotations

from ops.s3.base import ObjectInfo, S3Error

MD5 = {name: f"{n:032x}" for n, name in enumerate("abcdefgh")}


class Bucket:
    """list_pages of a fixed listing, in pages of `page` objects (or no such bucket)."""

    def __init__(self, objects: dict[str, str] | None, page: int = 2) -> None:
        self.objects, self.page = objects, page

    def list_pages(self, bucket: str, prefix: str = ""):
        if self.objects is None:
            raise S3Error(404, "NoSuchBucket", "no", "ListObjectsV2")
        items = [ObjectInfo(key, len(body), body) for key, body in self.objects.items()]
        for start in range(0, len(items), self.page):
            yield items[start : start + self.page]

    def list_objects(self, bucket: str, prefix: str = ""):
        for page in self.list_pages(bucket, prefix):
            yield from page
