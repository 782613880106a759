"""Dashboard entry script (`streamlit run dashboard/app.py`): declares the pages and the sidebar.

The sidebar's filters are rendered here, in the entry script, so their URL query parameters stay
valid on every page (Streamlit drops parameters bound to a page you leave).
"""

from __future__ import annotations

import streamlit as st

from conflictradar.dashboard import data
from conflictradar.dashboard.filters import sidebar
from conflictradar.dashboard.frame import sidebar_state
from conflictradar.dashboard.sandbox import exposed

data.start_timing()
# Bound off loopback (`dashboard --expose`), nobody is authenticated: no SQL page at all.
sql_page = [] if exposed() else [st.Page("views/sql.py", title="SQL", icon=":material/terminal:")]
st.set_page_config(page_title="conflictradar", page_icon=":material/radar:", layout="wide")
page = st.navigation(
    [
        st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("views/hotspots.py", title="Hotspots", icon=":material/local_fire_department:"),
        st.Page("views/causes.py", title="Causes", icon=":material/troubleshoot:"),
        st.Page("views/explorer.py", title="Explorer", icon=":material/table_rows:"),
        *sql_page,
        st.Page("views/alerts.py", title="Alerts", icon=":material/notifications:"),
    ]
)
with data.batch():  # the run's reads share one reader
    sidebar(*sidebar_state())
    page.run()
data.record_timing(page.title)
