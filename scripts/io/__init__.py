"""Reading and writing files: find and load a user's Dixon images (NIfTI, DICOM), atomic writes."""
