"""The studio's own CSS (passed to gr.Blocks): wide tables that keep their key columns in view,
headers that break between words, and a layout that works on a phone or a tablet."""

STUDIO_CSS = """
/* table headers break between words, never inside one */
.gradio-container table th, .gradio-container table th * {
  word-break: normal !important; overflow-wrap: normal !important; hyphens: none;
}
/* marker palettes wrap onto more lines instead of running off the edge */
#gen-markers, #ds-palette { flex-wrap: wrap !important; gap: 4px !important; }
#gen-markers > button, #gen-markers > *, #ds-palette > button { flex: 0 0 auto !important; min-width: 0 !important;
  width: auto !important; }
/* the train plots' axis labels: vega's fit layout sometimes places them left of its svg, which cut them */
#train-loss-plot svg.marks, #train-lr-plot svg.marks, #train-gn-plot svg.marks { overflow: visible !important; }
@media (max-width: 720px) {
  /* every tab stays a tab on a phone: smaller labels, wrapped onto two lines if need be, so
     Gradio's "..." overflow menu does not hide most of them */
  .tab-wrapper { height: auto !important; padding-bottom: 2px; }
  .tab-wrapper .tab-container { flex-wrap: wrap !important; height: auto !important; }
  .tab-wrapper .tab-container button { padding: 4px 7px !important; font-size: 13px !important; }
  .gradio-container { padding-left: 6px !important; padding-right: 6px !important; }
  /* the clips table: the columns a user acts on, the rest a sideways scroll away */
  #ds-clips table { font-size: 12px; }
  #ds-clips th:nth-child(3), #ds-clips td:nth-child(3),  /* speaker */
  #ds-clips th:nth-child(5), #ds-clips td:nth-child(5),  /* trim */
  #ds-clips th:nth-child(6), #ds-clips td:nth-child(6) { display: none !important; }  /* provenance */
}
"""
