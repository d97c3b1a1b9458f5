"""The self-contained static HTML report: inline SVG maps, charts and page layout (`html`) and the sections built from the gold tables (`sections`)."""
