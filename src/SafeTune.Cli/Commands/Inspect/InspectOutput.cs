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
        w.WriteStartObject("weights");
        w.WriteNumber("trainableElements", TrainableElements(s));
        WriteRoles(w, "parameters", s.Roles.Where(r => r.IsParameter));
        WriteRoles(w, "buffers", s.Roles.Where(r => !r.IsParameter));
        w.WriteStartArray("ties");
        foreach (var t in s.Ties)
        {
            w.WriteStartObject();
            w.WriteString("kept", t.Kept);
            w.WriteString("copy", t.Copy);
            w.WriteBoolean("transposed", t.Transposed);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    });

    /// <summary>The elements full fine-tuning trains by default: the parameters, each tied copy counted once.</summary>
    private static long TrainableElements(ModelSummary s)
    {
        var copies = s.Ties.Select(t => t.Copy).ToHashSet(StringComparer.Ordinal);
        return s.Roles.Where(r => r.IsParameter && !copies.Contains(r.Name)).Sum(r => r.Elements);
    }

    private static void WriteRoles(System.Text.Json.Utf8JsonWriter w, string name, IEnumerable<ParameterRole> roles)
    {
        w.WriteStartArray(name);
        foreach (var r in roles)
        {
            w.WriteStartObject();
            w.WriteString("name", r.Name);
            w.WriteNumber("elements", r.Elements);
            w.WriteString("reason", r.Reason);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

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

        var buffers = s.Roles.Count(r => !r.IsParameter);
        var weights = new Table()
            .Title($"Parameters and buffers ({s.Roles.Count - buffers} parameters, {TrainableElements(s).ToString("N0", inv)} elements trained by default; {buffers} buffers, frozen)")
            .AddColumns("kind", "initializer", "elements", "reason");
        foreach (var r in s.Roles.OrderBy(r => r.IsParameter ? 1 : 0))
            weights.AddRow(r.IsParameter ? "parameter" : "[yellow]buffer[/]", Markup.Escape(r.Name), r.Elements.ToString("N0", inv), Markup.Escape(r.Reason));
        console.Write(weights);
        foreach (var t in s.Ties)
            console.MarkupLine(Markup.Escape($"tied: '{t.Copy}' is {(t.Transposed ? "the transpose of" : "a copy of")} '{t.Kept}'; training re-ties them (one parameter) unless --keep-untied."));

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
