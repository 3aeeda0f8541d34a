<#
.SYNOPSIS
    Restores, builds, tests, benchmarks or publishes SafeTune.

.DESCRIPTION
    Runs on Windows, Linux and macOS with PowerShell 7, which the repository brings as a local dotnet tool:

        dotnet tool restore
        dotnet pwsh build.ps1 test

    Every dotnet call gets -p:SafeTuneExecutionProvider=<ExecutionProvider>, which picks the ONNX Runtime package
    in Directory.Packages.props (Cpu: Microsoft.ML.OnnxRuntime, Cuda: Microsoft.ML.OnnxRuntime.Gpu,
    DirectML: Microsoft.ML.OnnxRuntime.DirectML).

    Keeping the flavours apart: Cpu, the default, builds into the usual bin/ and obj/ folders, the same ones that a
    plain `dotnet build` or an IDE uses. Cuda and DirectML build with -p:UseArtifactsOutput=true and their own
    -p:ArtifactsPath (artifacts/ep/cuda, artifacts/ep/directml), so each project's restore assets (obj/) and
    binaries (bin/) for those flavours live there and never overwrite the Cpu ones; switching back to Cpu needs
    no clean and no second restore.

.PARAMETER Task
    restore | build | test | bench | publish (default: build). help, --help or -h prints this help.

.PARAMETER ExecutionProvider
    Cpu | Cuda | DirectML (default: Cpu). DirectML is Windows only.

.PARAMETER Configuration
    The build configuration (default: Release).

.PARAMETER Filter
    test: a `dotnet test --filter` expression. bench: BenchmarkDotNet's --filter (default: *).

.PARAMETER Fast
    test: skips the slow end-to-end tests (adds Category!=Slow to the filter). bench: BenchmarkDotNet's short job.

.PARAMETER Runtime
    publish: a runtime identifier such as linux-x64 or win-x64.

.PARAMETER BenchmarkArgs
    bench: further BenchmarkDotNet options, passed through (for example --list flat, --job short). Write a value
    that holds wildcards as one --option=value argument (see Invoke-Dotnet).

.EXAMPLE
    dotnet pwsh build.ps1 test -Fast

.EXAMPLE
    dotnet pwsh build.ps1 bench -Filter '*Parse*' --job short

.EXAMPLE
    dotnet pwsh build.ps1 publish -ExecutionProvider Cuda -Runtime linux-x64
#>
[CmdletBinding(PositionalBinding = $false)]
param(
    [Parameter(Position = 0)]
    [ValidateSet('restore', 'build', 'test', 'bench', 'publish', 'help', '--help', '-h')]
    [string] $Task = 'build',

    [ValidateSet('Cpu', 'Cuda', 'DirectML')]
    [string] $ExecutionProvider = 'Cpu',

    [string] $Configuration = 'Release',

    [string] $Filter,

    [switch] $Fast,

    [string] $Runtime,

    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]] $BenchmarkArgs
)
# After the help block, which must come first for Get-Help (and -?) to find it.
#Requires -Version 7.0

# `build.ps1 --help`: PowerShell hands an unknown dashed word to the remaining arguments, not to -Task.
$AskedForHelp = $Task -in 'help', '--help', '-h' -or
    (-not $PSBoundParameters.ContainsKey('Task') -and $BenchmarkArgs -and $BenchmarkArgs[0] -in '--help', '-h', '/?')
if ($AskedForHelp) {
    Get-Help $PSCommandPath -Detailed
    exit 0
}

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
# Native exit codes are checked by hand after every call.
$PSNativeCommandUseErrorActionPreference = $false

$Root = $PSScriptRoot
$Solution = Join-Path $Root 'SafeTune.sln'
$Artifacts = Join-Path $Root 'artifacts'
$RuntimeProject = Join-Path $Root 'src/SafeTune.Runtime/SafeTune.Runtime.csproj'
$CliProject = Join-Path $Root 'src/SafeTune.Cli/SafeTune.Cli.csproj'
$BenchmarkProject = Join-Path $Root 'benchmarks/SafeTune.Benchmarks/SafeTune.Benchmarks.csproj'
$EpLower = $ExecutionProvider.ToLowerInvariant()

# MSBuild properties passed to every dotnet call.
$EpArgs = @("-p:SafeTuneExecutionProvider=$ExecutionProvider")
if ($ExecutionProvider -ne 'Cpu') {
    # A separate obj/ and bin/ tree per non-default flavour (see the header).
    $EpArgs += '-p:UseArtifactsOutput=true'
    $EpArgs += "-p:ArtifactsPath=$(Join-Path $Artifacts "ep/$EpLower")"
}

function Write-Step([string] $Text) {
    Write-Host "==> $Text" -ForegroundColor Cyan
}

function Stop-Build([string] $Message, [int] $Code = 1) {
    Write-Host ''
    Write-Host "build.ps1: $Message" -ForegroundColor Red
    exit $Code
}

function Format-Command([string[]] $Arguments) {
    ($Arguments | ForEach-Object { if ($_ -match '\s') { "`"$_`"" } else { $_ } }) -join ' '
}

# Runs dotnet with the given arguments and stops the build when it fails.
# On Linux and macOS, PowerShell expands wildcards (* ? [) in arguments to native commands, splatted arrays included,
# when they match files: a lone '*' would become the list of files in the current folder. Values that may hold
# wildcards (the test and benchmark filters) are therefore passed as one '--option=value' argument, which matches no
# file and so reaches dotnet unchanged.
function Invoke-Dotnet([string[]] $Arguments) {
    Write-Step "dotnet $(Format-Command $Arguments)"
    & dotnet @Arguments
    if ($LASTEXITCODE -ne 0) {
        Stop-Build "dotnet $($Arguments[0]) failed (exit code $LASTEXITCODE)." $LASTEXITCODE
    }
}

# The ONNX Runtime package and version that Directory.Packages.props picks for the execution provider.
function Get-OnnxRuntimePackage {
    $arguments = @('msbuild', $RuntimeProject, '-getProperty:OnnxRuntimePackage', '-getProperty:OnnxRuntimeVersion') +
        $EpArgs
    $json = & dotnet @arguments 2>&1
    if ($LASTEXITCODE -ne 0) { return $null }
    try {
        $props = ($json | Out-String | ConvertFrom-Json).Properties
        return [pscustomobject]@{ Name = $props.OnnxRuntimePackage; Version = $props.OnnxRuntimeVersion }
    }
    catch {
        return $null
    }
}

# dotnet restore, with a clear message (exit code 2) when the ONNX Runtime package for the chosen execution
# provider is not on the configured NuGet feeds, instead of a wall of NU1101 errors or a silent fallback.
function Invoke-Restore([string] $Target, [string[]] $Extra = @()) {
    $arguments = @('restore', $Target) + $EpArgs
    if ($Extra) { $arguments += $Extra }
    Write-Step "dotnet $(Format-Command $arguments)"
    $lines = [System.Collections.Generic.List[string]]::new()
    & dotnet @arguments 2>&1 | ForEach-Object {
        $line = "$_"
        $lines.Add($line)
        Write-Host $line
    }
    $code = $LASTEXITCODE
    if ($code -eq 0) { return }

    $package = Get-OnnxRuntimePackage
    if ($null -ne $package -and $package.Name) {
        # NU1101: no such id on the feeds; NU1102: no such version; NU1103: only prerelease versions.
        # The name must end there (or at a sentence's full stop), so that Microsoft.ML.OnnxRuntime does not match
        # Microsoft.ML.OnnxRuntime.Managed.
        $pattern = "NU110[123]\b.*\b$([regex]::Escape($package.Name))(?!\.?[\w-])"
        if ($lines | Where-Object { $_ -match $pattern }) {
            Stop-Build ("The $ExecutionProvider execution provider needs the NuGet package $($package.Name) " +
                "version $($package.Version), and it is not available from the configured NuGet feeds " +
                "(restore reported NU1101/NU1102/NU1103 for it; see the errors above). To fix it, add a feed that " +
                "serves $($package.Name) $($package.Version) to your NuGet configuration (a nuget.config " +
                "next to SafeTune.sln, or 'dotnet nuget add source URL') and run again, or build the CPU flavour " +
                "with -ExecutionProvider Cpu.") 2
        }
    }
    Stop-Build "dotnet restore failed (exit code $code)." $code
}

# Counts the outcomes in the TRX files under $Directory.
function Get-TestCounts([string] $Directory) {
    $counts = [ordered]@{ Passed = 0; Failed = 0; Skipped = 0; Files = 0 }
    if (-not (Test-Path $Directory)) { return [pscustomobject]$counts }
    foreach ($file in Get-ChildItem -Path $Directory -Filter '*.trx' -Recurse -File) {
        $counts.Files++
        [xml] $doc = Get-Content -Raw -LiteralPath $file.FullName
        foreach ($result in $doc.GetElementsByTagName('UnitTestResult')) {
            switch ($result.GetAttribute('outcome')) {
                'Passed' { $counts.Passed++ }
                { $_ -in 'Failed', 'Error', 'Timeout', 'Aborted' } { $counts.Failed++ }
                default { $counts.Skipped++ } # NotExecuted (xunit's Skip), Inconclusive, ...
            }
        }
    }
    [pscustomobject]$counts
}

# --- Checks that come before any build ---------------------------------------------------------------------------

if (-not (Get-Command dotnet -ErrorAction SilentlyContinue)) {
    Stop-Build 'dotnet is not on PATH: install the .NET 10 SDK (see global.json).'
}

if ($ExecutionProvider -eq 'DirectML' -and -not $IsWindows) {
    $os = if ($IsLinux) { 'Linux' } elseif ($IsMacOS) { 'macOS' } else { 'this OS' }
    Stop-Build ("DirectML is a Windows (DirectX 12) execution provider: ONNX Runtime ships it only for Windows " +
        "(package Microsoft.ML.OnnxRuntime.DirectML), so it cannot be built or run on $os. Build on Windows 10/11 " +
        "for DirectML, use -ExecutionProvider Cuda for an NVIDIA GPU, or -ExecutionProvider Cpu.") 2
}

if ($BenchmarkArgs -and $Task -ne 'bench') {
    Stop-Build "unexpected arguments for task '$Task': $($BenchmarkArgs -join ' ')"
}

Push-Location $Root
try {
    switch ($Task) {
        'restore' {
            Invoke-Restore $Solution
        }

        'build' {
            Invoke-Restore $Solution
            Invoke-Dotnet (@('build', $Solution, '-c', $Configuration, '--no-restore') + $EpArgs)
        }

        'test' {
            Invoke-Restore $Solution
            $results = Join-Path $Artifacts 'test-results'
            if (Test-Path $results) { Remove-Item -LiteralPath $results -Recurse -Force }

            $filters = @()
            if ($Filter) { $filters += $Filter }
            if ($Fast) { $filters += 'Category!=Slow' }
            # The TRX logger's default file names (user_machine_timestamp, made unique by the logger) keep the test
            # projects, which run in parallel, from overwriting each other's results; a fixed LogFileName would not.
            $arguments = @('test', $Solution, '-c', $Configuration, '--no-restore',
                '--logger', 'trx', '--results-directory', $results) + $EpArgs
            # --filter=VALUE, one argument: see Invoke-Dotnet on wildcards.
            if ($filters.Count -eq 1) { $arguments += "--filter=$($filters[0])" }
            elseif ($filters.Count -gt 1) {
                $arguments += "--filter=$(($filters | ForEach-Object { "($_)" }) -join '&')"
            }

            Write-Step "dotnet $(Format-Command $arguments)"
            & dotnet @arguments
            $testExit = $LASTEXITCODE

            $c = Get-TestCounts $results
            $problems = @()
            if ($testExit -ne 0) { $problems += "dotnet test failed (exit code $testExit)." }
            if ($c.Failed -gt 0) { $problems += "$($c.Failed) test(s) failed." }
            if ($c.Passed + $c.Failed -eq 0) {
                $problems += "no test ran ($($c.Files) TRX file(s) under $results)."
            }
            Write-Host ''
            foreach ($p in $problems) { Write-Host "build.ps1: $p" -ForegroundColor Red }
            # The closing line, read by people and CI alike.
            Write-Host "$($c.Passed) passed, $($c.Failed) failed, $($c.Skipped) skipped"
            if ($problems.Count -gt 0) { exit 1 }
        }

        'bench' {
            Invoke-Restore $Solution
            # --filter=PATTERN, one argument: see Invoke-Dotnet on wildcards.
            $benchArgs = @("--filter=$(if ($Filter) { $Filter } else { '*' })")
            if ($Fast) { $benchArgs += @('--job', 'short') }
            if ($BenchmarkArgs -notcontains '--artifacts') {
                $benchArgs += @('--artifacts', (Join-Path $Artifacts 'benchmarks'))
            }
            if ($BenchmarkArgs) { $benchArgs += $BenchmarkArgs }
            Invoke-Dotnet (@('run', '-c', $Configuration, '--no-restore', '--project', $BenchmarkProject) + $EpArgs +
                @('--') + $benchArgs)
        }

        'publish' {
            $ridArgs = @()
            if ($Runtime) { $ridArgs = @('-r', $Runtime) }
            Invoke-Restore $CliProject $ridArgs
            $out = Join-Path $Artifacts "publish/$EpLower"
            Invoke-Dotnet (@('publish', $CliProject, '-c', $Configuration, '--no-restore', '-o', $out) + $ridArgs +
                $EpArgs)
            Write-Host "Published to $out"
        }
    }
}
finally {
    Pop-Location
}
