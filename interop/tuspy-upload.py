"""Uploads FILE to a tus ENDPOINT with tuspy (PyPI), in CHUNK-byte PATCHes,
with a filename in the metadata; prints the upload URL, or the error and
exits 1. Usage: python tuspy-upload.py ENDPOINT FILE [CHUNK]"""
import os
import sys

from tusclient import client

endpoint, path = sys.argv[1], sys.argv[2]
chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 65536
try:
    uploader = client.TusClient(endpoint).uploader(
        path,
        chunk_size=chunk,
        metadata={"filename": os.path.basename(path), "data_stream": "eicr"},
        upload_checksum=True,
    )
    uploader.upload()
except Exception as error:  # every failure is reported the same way
    print(f"upload failed: {error}", file=sys.stderr)
    sys.exit(1)
print(uploader.url)
