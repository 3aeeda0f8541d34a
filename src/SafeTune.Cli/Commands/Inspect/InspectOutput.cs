using System.Globalization;
using SafeTune.Cli.Infrastructure;
using SafeTune.Onnx.Inspection;
using Spectre.Console;

namespace SafeTune.Cli.Commands.Inspect;

/// <summary>Renders a <see cref="ModelSummary"/> as JSON or as tables.</summary>
internal static class InspectOutput
{
    public static void WriteJson(ModelSummary s) => JsonOut.Write(w =>
    {
        w.WriteNumber("irVersion", s.IrVersion);
        w.WriteStartObject("opsets");
        foreach (var (d, v) in s.Opsets) w.WriteNumber(d, v);
        w.WriteEndObject();
        w.WriteString("producer", s.Producer);
        WriteSignatures(w, "inputs", s.Inputs);
        WriteSignatures(w, "outputs", s.Outputs);
        w.WriteStartObject("ops");
        foreach (var (op, n) in s.Ops) w.WriteNumber(op, n);
        w.WriteEndObject();
        w.WriteNumber("parameters", s.Parameters);
        w.WriteNumber("initializers", s.Initializers);
        w.WriteStartArray("hiddenStates");
        foreach (var h in s.HiddenStates)
        {
            w.WriteStartObject();
            w.WriteNumber("layer", h.Layer);
            w.WriteString("tensor", h.Tensor);
            JsonOut.WriteShape(w, "shape", h.Shape);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("nonDifferentiable");
        foreach (var op in s.NonDifferentiable) w.WriteStringValue(op);
        w.WriteEndArray();
    });

    private static void WriteSignatures(System.Text.Json.Utf8JsonWriter w, string name, IReadOnlyList<TensorSignature> list)
    {
        w.WriteStartArray(name);
        foreach (var t in list)
        {
            w.WriteStartObject();
            w.WriteString("name", t.Name);
            w.WriteString("elementType", t.ElementType);
            JsonOut.WriteShape(w, "shape", t.Shape);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    public static void WriteTables(string source, ModelSummary s, IAnsiConsole console)
    {
        var inv = CultureInfo.InvariantCulture;
        var header = new Grid().AddColumn().AddColumn();
        header.AddRow("[bold]model[/]", Markup.Escape(source));
        header.AddRow("[bold]producer[/]", Markup.Escape(s.Producer.Length > 0 ? s.Producer : "(not recorded)"));
        header.AddRow("[bold]IR / opsets[/]", Markup.Escape($"IR {s.IrVersion}; " + string.Join(", ", s.Opsets.Select(o => $"{o.Key} {o.Value}"))));
        header.AddRow("[bold]parameters[/]", Markup.Escape($"{s.Parameters.ToString("N0", inv)} in {s.Initializers} initializers"));
        console.Write(header);

        var io = new Table().Title("Inputs and outputs").AddColumns("", "name", "type", "shape");
        foreach (var t in s.Inputs) io.AddRow("in", Markup.Escape(t.Name), t.ElementType, Markup.Escape(ShapeText(t.Shape)));
        foreach (var t in s.Outputs) io.AddRow("out", Markup.Escape(t.Name), t.ElementType, Markup.Escape(ShapeText(t.Shape)));
        console.Write(io);

        var ops = new Table().Title($"Operators ({s.Ops.Values.Sum()} nodes)").AddColumns("op", "count");
        foreach (var (op, n) in s.Ops) ops.AddRow(Markup.Escape(op), n.ToString(inv));
        console.Write(ops);

        console.MarkupLine(s.NonDifferentiable.Count == 0
            ? "[green]Every op between the parameters and the outputs has a gradient rule.[/]"
            : $"[yellow]No gradient rule for: {Markup.Escape(string.Join(", ", s.NonDifferentiable))}[/]");
        if (s.HiddenStates.Count == 0)
        {
            console.MarkupLine("[yellow]No transformer blocks recognised: no hidden-state tensors to offer.[/]");
            return;
        }
        var hidden = new Table().Title("Hidden states (residual stream after each block)").AddColumns("layer", "tensor", "shape");
        foreach (var h in s.HiddenStates) hidden.AddRow(h.Layer.ToString(inv), Markup.Escape(h.Tensor), Markup.Escape(ShapeText(h.Shape)));
        console.Write(hidden);
    }

    private static string ShapeText(IReadOnlyList<object>? shape) => shape is null ? "?" : "[" + string.Join(", ", shape) + "]";
}
