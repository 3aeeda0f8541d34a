using System.Globalization;
using SafeTune.Cli.Infrastructure;
using SafeTune.Models.Generation;
using SafeTune.Models.HuggingFace;
using SafeTune.Onnx;
using SafeTune.Onnx.Passes;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Export;

/// <summary><c>safetune export --from-hf DIR --out MODEL.onnx</c>: a Hugging Face checkpoint to ONNX, without Python.</summary>
public sealed class ExportCommand : Command<ExportSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, ExportSettings settings, CancellationToken cancellationToken)
    {
        var checkpoint = HfCheckpoint.Load(settings.FromHf);
        var model = HfExporter.Export(checkpoint);
        int layers = HiddenStateLocator.Locate(model).Count;
        if (settings.GenAiOut is { } genai)
        {
            var tokenizer = Path.Combine(checkpoint.Directory, "tokenizer.json");
            if (!File.Exists(tokenizer))
                throw new InvalidDataException($"{checkpoint.Directory}: --genai-out needs the checkpoint's tokenizer.json; none found.");
            GenAiFolder.Write(HfExporter.Export(checkpoint, DecoderGraphOptions.WithKvCache), tokenizer, genai);
        }
        if (settings.HiddenStates) PassRunner.Run(model, new ExposeHiddenStatesPass());
        if (settings.Out.Length > 0) model.Save(settings.Out);
        long parameters = model.Graph.Initializers.Where(v => v.ElementType.IsFloatingPoint()).Sum(v => v.Initializer!.ElementCount);
        if (settings.Json)
        {
            JsonOut.Write(w =>
            {
                w.WriteString("out", settings.Out.Length > 0 ? settings.Out : null);
                w.WriteString("genaiOut", settings.GenAiOut);
                w.WriteString("modelType", checkpoint.ModelType);
                w.WriteNumber("parameters", parameters);
                w.WriteNumber("layers", layers);
            });
        }
        else
        {
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"{Markup.Escape(checkpoint.ModelType)}: {layers} layers, {parameters:N0} parameters -> {Markup.Escape(string.Join(", ", new[] { settings.Out, settings.GenAiOut ?? "" }.Where(p => p.Length > 0)))}"));
        }
        return ExitCodes.Ok;
    }
}
