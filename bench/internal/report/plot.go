package report

import (
	"fmt"
	"io"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/dindops/dindops/bench/internal/results"
)

// PlotPNG draws the engine benchmark as a PNG: one panel per phase, wall
// time (median, log scale) against the number of hosts (log scale), one
// line per tool; solid over loopback, dashed through the delay proxy.
func PlotPNG(w io.Writer, sums []results.Summary, tools []string) error {
	var phases []string
	for _, s := range sums {
		if s.Scenario == "engine" && !slices.Contains(phases, s.Phase) {
			phases = append(phases, s.Phase)
		}
	}
	if len(phases) == 0 {
		return fmt.Errorf("no engine results to plot")
	}
	titles := map[string]string{"plan": "plan / check mode", "first": "first run (changes)", "noop": "no-op run"}
	row := make([]*plot.Plot, 0, len(phases))
	for _, ph := range phases {
		p := plot.New()
		p.Title.Text = titles[ph]
		if p.Title.Text == "" {
			p.Title.Text = ph
		}
		p.X.Label.Text = "hosts"
		p.Y.Label.Text = "wall time, s (median)"
		p.X.Tick.Marker = hostTicks(sums)
		// Log scales need a range: with one fleet size, or one time, the
		// axis stays linear.
		if len(hostTicks(sums)) > 1 {
			p.X.Scale = plot.LogScale{}
		}
		if distinctWalls(sums, ph) > 1 {
			p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		} else {
			p.Y.Min = 0
		}
		p.Add(plotter.NewGrid())
		p.Legend.Top, p.Legend.Left = true, true
		for ti, tool := range tools {
			for _, net := range nets(sums) {
				var xys plotter.XYs
				for _, s := range sums {
					if s.Scenario == "engine" && s.Phase == ph && s.Tool == tool && s.Net == net && s.Wall > 0 {
						xys = append(xys, plotter.XY{X: float64(s.Hosts), Y: s.Wall.Seconds()})
					}
				}
				if len(xys) == 0 {
					continue
				}
				slices.SortFunc(xys, func(a, b plotter.XY) int { return int(a.X - b.X) })
				l, pts, err := plotter.NewLinePoints(xys)
				if err != nil {
					return err
				}
				l.Color = plotutil.Color(ti)
				l.Width = vg.Points(1.5)
				pts.Color = l.Color
				pts.Shape = plotutil.Shape(ti)
				label := tool
				if net != "loopback" {
					l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
					label += " " + net
				}
				p.Add(l, pts)
				p.Legend.Add(label, l, pts)
			}
		}
		// Room above the lines for the legend (top left).
		if _, ok := p.Y.Scale.(plot.LogScale); ok {
			p.Y.Max *= 12
		} else {
			p.Y.Max *= 1.8
		}
		row = append(row, p)
	}
	const panelW, panelH = 11 * vg.Centimeter, 10 * vg.Centimeter
	img := vgimg.NewWith(vgimg.UseWH(panelW*vg.Length(len(row)), panelH), vgimg.UseDPI(110))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{row}, tiles, dc)
	for i, p := range row {
		p.Draw(canvases[0][i])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

func distinctWalls(sums []results.Summary, phase string) int {
	var ws []float64
	for _, s := range sums {
		if s.Scenario == "engine" && s.Phase == phase && !slices.Contains(ws, s.Wall.Seconds()) {
			ws = append(ws, s.Wall.Seconds())
		}
	}
	return len(ws)
}

func nets(sums []results.Summary) []string {
	var out []string
	for _, s := range sums {
		if !slices.Contains(out, s.Net) {
			out = append(out, s.Net)
		}
	}
	return out
}

// hostTicks labels exactly the fleet sizes that were run.
func hostTicks(sums []results.Summary) plot.ConstantTicks {
	var ns []int
	for _, s := range sums {
		if s.Scenario == "engine" && !slices.Contains(ns, s.Hosts) {
			ns = append(ns, s.Hosts)
		}
	}
	slices.Sort(ns)
	t := make(plot.ConstantTicks, 0, len(ns))
	for _, n := range ns {
		t = append(t, plot.Tick{Value: float64(n), Label: fmt.Sprint(n)})
	}
	return t
}
