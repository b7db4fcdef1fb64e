"""Uploads to the government's energy online-monitoring platforms (重点用能单位能耗在线监测 接入端).

Maps rollups and declared data onto each platform profile's data items, keeps one durable queue per
platform endpoint, delivers with retries until each record is acknowledged, checks data quality before
and after upload, and exports what was (or would have been) sent.
"""
