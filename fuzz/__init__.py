"""Fuzz targets of korora-nova's parsers and appraisal (not a product
package: nothing in korora_nova imports it)."""
