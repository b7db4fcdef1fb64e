"""Bilingual labels of the report files: 中文 and English side by side, in one place.

Every label is ``"中文 English"`` so a reviewer of the pilot-programme office and an auditor reading
English see the same cell. Indicator names come from the catalogue (Chinese) plus the English names
below; anything not listed falls back to its id, so a new indicator still appears, only less pretty.
"""

from __future__ import annotations

from typing import Final


def both(zh: str, en: str) -> str:
    """One bilingual label: Chinese first, then English."""
    return f"{zh} {en}"


TITLE: Final = both("园区能源与碳排放月度报告", "Monthly park energy and carbon report")
NOT_COMPUTED: Final = both("未计算", "not computed")
NONE: Final = "—"

SECTIONS: Final = {
    "summary": both("概览", "Summary"),
    "indicators": both("指标", "Indicators"),
    "by_source": both("分来源碳排放与综合能耗", "Carbon and energy by source"),
    "meters": both("分表能耗", "Per-meter energy"),
    "balance": both("能量平衡", "Energy balance"),
    "quality": both("数据质量", "Data quality"),
    "daily": both("分能源品种日能耗", "Daily energy per carrier"),
    "load": both("电力负荷持续曲线", "Electricity load duration curve"),
    "pue": both("PUE 趋势", "PUE trend"),
}

SHEETS: Final = {  # Excel sheet names: at most 31 characters, no []:*?/\
    "summary": "概览 Summary",
    "indicators": "指标 Indicators",
    "by_source": "分来源 By source",
    "meters": "分表能耗 Meters",
    "balance": "能量平衡 Balance",
    "quality": "数据质量 Quality",
    "daily": "日能耗 Daily",
    "load": "负荷曲线 Load",
    "pue": "PUE",
}

INDICATOR_EN: Final = {
    "energy_intensity_va": "Energy use per industrial value added",
    "co2_intensity_va": "CO₂ per industrial value added",
    "nonfossil_share": "Non-fossil share of energy use",
    "renewable_share": "Renewable share",
    "waste_heat_recovery_rate": "Industrial waste-heat recovery rate",
    "rooftop_pv_coverage": "Rooftop PV coverage of new factory roofs",
    "public_building_energy_intensity": "Public-building energy use per floor area",
    "carbon_per_energy": "Carbon per unit of energy",
    "electrification_rate": "Electricity share of final energy",
    "total_energy": "Total energy consumption",
    "total_co2": "Total CO₂ emissions",
    "industrial_value_added": "Industrial value added",
    "pue": "Power usage effectiveness (period)",
    "pue_rolling_12m": "Power usage effectiveness (rolling 12 months)",
    "co2_by_source": "CO₂ by source",
    "energy_by_source": "Total energy by source",
}
INDICATOR_ZH_EXTRA: Final = {"co2_by_source": "分来源二氧化碳排放", "energy_by_source": "分来源综合能耗"}

VARIANT: Final = {
    "location": both("基于位置", "location-based"),
    "market": both("基于市场", "market-based"),
    "当量值": both("当量值", "calorific"),
    "等价值": both("等价值", "coal-equivalent"),
    "calorific": both("当量值", "calorific"),
    "coal_equivalent": both("等价值", "coal-equivalent"),
}

SOURCE: Final = {
    "grid_electricity": both("电网购入电力", "grid electricity"),
    "electricity": both("电力", "electricity"),
    "natural_gas": both("天然气", "natural gas"),
    "gas": both("天然气", "natural gas"),
    "purchased_heat": both("外购热力", "purchased heat"),
    "heat": both("热力", "heat"),
    "other_fuels": both("其他燃料", "other fuels"),
    "fuels": both("燃料", "fuels"),
    "process": both("工业过程", "process emissions"),
    "process_emissions": both("工业过程", "process emissions"),
    "water": both("水", "water"),
    "renewable": both("可再生能源", "renewable energy"),
    "onsite_renewable": both("自发可再生能源", "on-site renewables"),
    "onsite_electricity": both("自发自用电力", "on-site electricity (self-consumed)"),
    "renewable_heat": both("可再生热力", "renewable heat"),
    "fresh_water": both("新水", "fresh water"),
    "purchased_steam": both("外购蒸汽", "purchased steam"),
    "total": both("合计", "total"),
}

CARRIER: Final = {
    "electricity": both("电力", "electricity"),
    "gas": both("天然气", "gas"),
    "heat": both("热力", "heat"),
    "cooling": both("冷量", "cooling"),
    "steam": both("蒸汽", "steam"),
    "water": both("水", "water"),
}

METRIC: Final = {
    "active_energy_import": both("正向有功", "import"),
    "active_energy_export": both("反向有功", "export"),
    "generated_energy": both("发电量", "generation"),
    "reactive_energy_import": both("正向无功", "reactive import"),
    "battery_charge_energy": both("充电量", "battery charge"),
    "battery_discharge_energy": both("放电量", "battery discharge"),
    "gas_volume": both("用气量", "gas volume"),
    "heat_energy": both("热量", "heat"),
    "recovered_heat_energy": both("余热回收", "recovered heat"),
    "cooling_energy": both("冷量", "cooling"),
    "steam_mass": both("蒸汽", "steam"),
    "water_volume": both("用水量", "water"),
}

QUALITY: Final = {
    "measured": both("实测", "measured"),
    "estimated": both("估算", "estimated"),
    "replacement": both("换表", "replacement"),
}

#: Column headers: (中文, English, unit or ""), rendered "中文 English (unit)".
COLUMNS: Final[dict[str, tuple[str, str, str]]] = {
    "indicator": ("指标", "indicator", ""),
    "variant": ("口径", "variant", ""),
    "subject": ("对象", "subject", ""),
    "value": ("数值", "value", ""),
    "unit": ("单位", "unit", ""),
    "estimated_share": ("估算占比", "estimated share", "%"),
    "completeness": ("完整率", "completeness", "%"),
    "status": ("状态", "status", ""),
    "revision": ("修订", "revision", ""),
    "vintages": ("因子版本", "factor vintages", ""),
    "source": ("来源", "source", ""),
    "co2_location": ("CO₂ 基于位置", "location-based", "tCO2"),
    "co2_market": ("CO₂ 基于市场", "market-based", "tCO2"),
    "energy_calorific": ("综合能耗 当量值", "calorific", "tce"),
    "energy_coal_equivalent": ("综合能耗 等价值", "coal-equivalent", "tce"),
    "device": ("表计", "meter", ""),
    "metric": ("计量项", "metric", ""),
    "carrier": ("能源品种", "carrier", ""),
    "level": ("级别", "level", ""),
    "site": ("分区", "site", ""),
    "energy": ("能耗", "energy", ""),
    "estimated_energy": ("估算能耗", "estimated energy", ""),
    "intervals": ("有效/应有时段", "intervals present/expected", ""),
    "quality": ("质量", "quality", ""),
    "flags": ("标记", "flags", ""),
    "date": ("日期", "date", ""),
    "rank_hours": ("时长", "duration", "h"),
    "load_kw": ("负荷", "load", "kW"),
    "pue": ("PUE", "PUE", "1"),
    "facility_kwh": ("总耗电", "facility energy", "kWh"),
    "it_kwh": ("IT 耗电", "IT energy", "kWh"),
    "reason": ("原因", "reason", ""),
    "messages": ("消息数", "messages", ""),
    "rows_rejected": ("拒收读数", "readings rejected", ""),
    "figure": ("项目", "figure", ""),
}

BALANCE_COLUMNS: Final[dict[str, tuple[str, str]]] = {
    "carrier": ("能源品种", "carrier"),
    "metric": ("计量项", "metric"),
    "unit": ("单位", "unit"),
    "level1_energy": ("一级购入", "level-1 import"),
    "generation_energy": ("自发", "on-site generation"),
    "export_energy": ("一级送出", "level-1 export"),
    "supply_energy": ("供入合计", "supply"),
    "level2_import_energy": ("二级购入", "level-2 import"),
    "level2_export_energy": ("二级送出", "level-2 export"),
    "level2_energy": ("二级合计", "Σ level 2"),
    "difference": ("差值", "difference"),
    "difference_pct": ("差值", "difference (%)"),
    "alarm": ("报警", "alarm"),
}


def column(key: str, unit: str | None = None) -> str:
    """The header of column ``key``: ``中文 English (unit)`` (``unit`` overrides the default)."""
    zh, en, default = COLUMNS[key]
    u = default if unit is None else unit
    return f"{zh} {en} ({u})" if u else f"{zh} {en}"


def indicator_name(indicator: str, name_zh: str | None) -> str:
    """Bilingual indicator name (catalogue Chinese name + English), falling back to the id."""
    zh = name_zh or INDICATOR_ZH_EXTRA.get(indicator, "")
    en = INDICATOR_EN.get(indicator, indicator)
    return both(zh, en) if zh else en


def lookup(table: dict[str, str], key: str | None) -> str:
    """``table[key]``, or the key itself when it has no label (never hides data)."""
    if key is None or key == "":
        return NONE
    return table.get(key, key)


def fixed_texts() -> list[str]:
    """Every fixed label, for the font coverage check before rendering."""
    texts = [TITLE, NOT_COMPUTED, *SECTIONS.values(), *SHEETS.values(), *INDICATOR_EN.values(),
             *INDICATOR_ZH_EXTRA.values(), *VARIANT.values(), *SOURCE.values(), *CARRIER.values(), *METRIC.values(),
             *QUALITY.values()]
    texts.extend(" ".join(v) for v in COLUMNS.values())
    texts.extend(" ".join(v) for v in BALANCE_COLUMNS.values())
    return texts


def human(value: float | None, unit: str = "") -> str:
    """A number for people: thousands separators; 1 decimal from 10 000, 3 from 1, 4 significant digits below."""
    if value is None:
        return NONE
    magnitude = abs(value)
    if magnitude == 0:
        text = "0"
    elif magnitude >= 10_000:
        text = f"{value:,.1f}"
    elif magnitude >= 1:
        text = f"{value:,.3f}"
    else:
        text = f"{value:.4g}"
    return f"{text} {unit}".rstrip()


def pct(share: float | None, digits: int = 1) -> str:
    """A fraction 0..1 as a percentage (``—`` for ``None``)."""
    return NONE if share is None else f"{share * 100:.{digits}f}%"


def balance_order(columns: tuple[str, ...]) -> list[str]:
    """Balance columns in reading order (carrier, metric, unit, supply terms, demand terms, result), then any
    column this version has no label for, so a new term still shows."""
    return [*(c for c in BALANCE_COLUMNS if c in columns), *(c for c in columns if c not in BALANCE_COLUMNS)]


def park_label(park_id: str, name: str | None) -> str:
    """``id · name``, or just the id when the name is empty or the same."""
    return f"{park_id} · {name}" if name and name != park_id else park_id
